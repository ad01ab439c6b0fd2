"""Small HTML helpers: escaping, times and the page shell every dashboard page shares.

Everything a page shows passes through `text` (or `attr`), so a manifest, commit message
or log line cannot inject markup.
"""

from __future__ import annotations

import html
import time
from urllib.parse import quote

STYLESHEET = "/ui/static/dashboard.css"
STREAM = "/ui/events/stream"  # what live pages listen to for "the state changed"


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
    extra_script: str = "",
    stream: str = STREAM,
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
    code = (LIVE_SCRIPT if live else "") + extra_script
    script = f'<script nonce="{attr(nonce)}">{code}</script>' if code else ""
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
<main id="main" tabindex="-1" data-stream="{attr(stream)}">
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
  var stream = new EventSource(document.getElementById('main').dataset.stream);
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
      var kept = main.querySelector('[data-keep]');
      main.innerHTML = fresh.innerHTML;
      var slot = kept && main.querySelector('#' + CSS.escape(kept.id));
      if (slot) slot.replaceWith(kept);  // a followed log keeps the lines it appended
      if (link) {
        var again = main.querySelector('a[href="' + CSS.escape(link) + '"]');
        if (again) again.focus();
      }
    });
  });
})();
"""


# `logs -f` on the agent page: appends each line the stream sends, as text, keeping the
# newest 2,000 and staying at the bottom unless the reader scrolled up.
FOLLOW_SCRIPT = """
(function () {
  var pre = document.getElementById('log-lines');
  if (!pre || !window.EventSource) return;
  var stream = new EventSource(pre.dataset.follow);
  stream.onopen = function () { pre.dataset.following = 'on'; };
  stream.onmessage = function (event) {
    var entry = JSON.parse(event.data);
    var into = document.getElementById('log-lines') || pre;
    var atEnd = into.scrollTop + into.clientHeight >= into.scrollHeight - 4;
    into.appendChild(document.createTextNode(entry[0] + ' ' + entry[1] + '\\n'));
    while (into.childNodes.length > 2000) into.removeChild(into.firstChild);
    if (atEnd) into.scrollTop = into.scrollHeight;
  };
})();
"""
