"""The shared kernel: plain-Python pieces every context may use (no Django, no domain)."""
