"""The HTTP API: every ``/api/v1/`` endpoint, the inbound webhooks and ``/healthz``.

A leaf: it turns requests into the contexts' commands and queries and their
answers and errors into JSON, and nothing imports it but the URL map.
``http`` holds the plumbing (authentication, CSRF, body parsing), ``errors``
the one mapping of errors to the error shape, ``openapi`` the description
served at ``/api/v1/openapi.json``; each other module is one context's
endpoints.
"""
