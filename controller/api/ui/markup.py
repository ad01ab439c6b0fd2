"""Small HTML helpers: escaping, times and the page shell every dashboard page shares.

Everything a page shows passes through `text` (or `attr`), so a manifest, commit message
or log line cannot inject markup.
"""

from __future__ import annotations

import html
import time
from urllib.parse import quote

STYLESHEET = "/ui/static/dashboard.css"


def text(value: object) -> str:
    """`value` as HTML text ("" for None)."""
    return html.escape("" if value is None else str(value), quote=True)


def attr(value: object) -> str:
    """`value` for a double-quoted attribute."""
    return text(value)


def path_part(value: str) -> str:
    """`value` as one URL path segment."""
    return quote(value, safe="")


def age(since: float | None, now: float | None = None) -> str:
    """How long ago, as kubectl prints it: 45s, 12m, 3h, 2d."""
    if since is None:
        return "—"
    seconds = max(0, int((now if now is not None else time.time()) - since))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def timestamp(value: float | None) -> str:
    """A UTC time in a <time> element."""
    if value is None:
        return "—"
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))
    shown = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))
    return f'<time datetime="{iso}">{shown}</time>'


def short(commit: str | None) -> str:
    return text(commit[:8]) if commit else "—"


def page(
    title: str,
    body: str,
    *,
    nonce: str,
    signed_in: bool,
    csrf: str,
    live: bool = False,
) -> str:
    """A whole page: header with navigation, `body` as the main content, and (when
    `live`) the script that swaps in a fresh `<main>` whenever the state changes."""
    sign_out = (
        f'<form method="post" action="/ui/logout" class="inline">'
        f'<input type="hidden" name="csrf" value="{attr(csrf)}">'
        f'<button type="submit">Sign out</button></form>'
        if signed_in
        else ""
    )
    script = f'<script nonce="{attr(nonce)}">{LIVE_SCRIPT}</script>' if live else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{text(title)} · Shipyard</title>
<link rel="stylesheet" href="{STYLESHEET}">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
<nav aria-label="Dashboard">
<a href="/ui/" class="brand">Shipyard</a>
<a href="/ui/">Overview</a>
<a href="/ui/events">Events</a>
{sign_out}
</nav>
</header>
<main id="main" tabindex="-1">
{body}
</main>
{script}
</body>
</html>
"""


# Refreshes <main> in place (no reload, focus and scroll kept) when the stream says the
# controller's state changed; without JavaScript the pages still work, just not live.
LIVE_SCRIPT = """
(function () {
  if (!window.EventSource) return;
  var stream = new EventSource('/ui/events/stream');
  stream.onopen = function () { document.body.dataset.live = 'on'; };
  stream.addEventListener('change', function () {
    var main = document.getElementById('main');
    var active = document.activeElement;
    if (active && main.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) {
      return;  // someone is filling in a form: the next change refreshes
    }
    var link = active && main.contains(active) ? active.getAttribute('href') : null;
    fetch(location.href, {credentials: 'same-origin'}).then(function (response) {
      return response.ok ? response.text() : null;
    }).then(function (page) {
      if (!page) return;
      var fresh = new DOMParser().parseFromString(page, 'text/html').getElementById('main');
      if (!fresh) return;
      main.innerHTML = fresh.innerHTML;
      if (link) {
        var again = main.querySelector('a[href="' + CSS.escape(link) + '"]');
        if (again) again.focus();
      }
    });
  });
})();
"""
