"""The visitor's pre-chat form: who is asking, so an agent can answer them."""

from __future__ import annotations

from django import forms


class StartChatForm(forms.Form):
    name = forms.CharField(label="Your name", max_length=200, strip=True)
    email = forms.EmailField(
        label="Email",
        max_length=254,
        help_text="So we can follow up if you leave before we answer.",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["name"].widget.attrs.update(autocomplete="name", autofocus=True)
        self.fields["email"].widget.attrs.update(autocomplete="email", inputmode="email")
