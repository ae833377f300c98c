"""The two small pages of unsubscribing: a confirmation with one button, and the answer."""

from __future__ import annotations

import html

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body {{ margin: 0; padding: 48px 16px; background: #f4f5f7; color: #222;
       font: 16px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }}
main {{ max-width: 460px; margin: 0 auto; padding: 32px; background: #fff; border-radius: 8px; }}
h1 {{ margin: 0 0 12px; font-size: 22px; }}
button {{ margin-top: 12px; padding: 12px 24px; border: 0; border-radius: 6px;
         background: #1f3a5f; color: #fff; font-size: 16px; cursor: pointer; }}
</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""


def confirm_page(sender: str) -> str:
    # No action attribute: the form posts back to the very URL of this page, whatever host and
    # prefix it is served under.
    return _page(
        "Unsubscribe",
        "<h1>Unsubscribe?</h1>\n"
        f"<p>You will no longer receive email from {html.escape(sender)}.</p>\n"
        '<form method="post">\n'
        '<input type="hidden" name="unsubscribe" value="confirm">\n'
        '<button type="submit">Unsubscribe</button>\n'
        "</form>",
    )


def already_unsubscribed_page(sender: str) -> str:
    return _page(
        "Unsubscribed",
        "<h1>You are unsubscribed</h1>\n"
        f"<p>You will no longer receive email from {html.escape(sender)}.</p>",
    )


def unsubscribed_page() -> str:
    return _page(
        "Unsubscribed",
        "<h1>You are unsubscribed</h1>\n<p>You will no longer receive these emails.</p>",
    )


def _page(title: str, body: str) -> str:
    return _PAGE.format(title=html.escape(title), body=body)
