"""Open pixel and click redirects, written into a message's HTML part as it is sent.

Links are rewritten after rendering, so a link whose URL holds merge fields is tracked with the
URL this recipient got. Each link of the HTML part becomes ``{base}/c/{token}``, where the token
signs the job and the link's id; the id names a row of ``campaign_links`` holding the URL, so the
redirect can only ever lead to a URL the campaign sent. The id is a hash of the URL: every worker
computes it alone, and a link is written to the database once per campaign, before the first
message that holds it is sent (a URL with merge fields costs one write per distinct URL).

Left untouched: ``mailto:``, ``tel:``, ``#anchors``, relative and other non-HTTP links, and links
to this sender's own endpoints (the unsubscribe link above all). The text part keeps its plain
links: a redirect there would put a long opaque URL in front of the reader.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import html
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from campaigns.content.templating import RenderedMessage
from campaigns.core.models import CampaignLink, utc_now
from campaigns.core.storage import Database, conflict_insert
from campaigns.tracking.routes import TRACKING_PATHS, click_url, open_pixel_url, path_prefix

# The href of an <a> tag, quoted either way or bare. Rendered HTML comes out of the CSS inliner's
# serializer, which always writes double quotes; the other forms cost nothing to accept.
_ANCHOR_HREF = re.compile(
    r"""(<a\b(?:[^>]*?\s)?href\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE
)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_REGISTERED_LINKS_KEPT = 10_000
"""Links a tracker remembers (as judged, as written to the database); per-recipient URLs never
repeat, so each memory is emptied when it reaches this size rather than grown without end."""


def link_id_for(url: str) -> int:
    """The id of a campaign link: 63 bits of SHA-256 of its URL (a collision is not expected
    before billions of distinct URLs in one campaign)."""
    return int.from_bytes(hashlib.sha256(url.encode("utf-8", "surrogatepass")).digest()[:8]) >> 1


def pixel_tag(url: str) -> str:
    return (
        f'<img src="{url}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">'
    )


class LinkTracker:
    """Adds the pixel and the click redirects to one campaign's messages; one per campaign and
    worker process."""

    def __init__(
        self, *, database: Database, campaign_id: int, base_url: str, secret: bytes
    ) -> None:
        self.campaign_id = campaign_id
        self._database = database
        self._base_url = base_url.rstrip("/")
        self._secret = secret
        self._own_prefixes = tuple(self._base_url + path_prefix(path) for path in TRACKING_PATHS)
        self._registered: set[int] = set()
        self._link_by_href: dict[str, tuple[int, str] | None] = {}
        """Each href as written in the HTML -> (link id, URL), or None for one left alone."""

    def rewrite(self, message_html: str, *, job_id: int) -> tuple[str, dict[int, str]]:
        """The HTML with its links and the pixel for ``job_id``, and the links (id -> URL) that
        must be registered before it is sent."""
        unregistered: dict[int, str] = {}

        def tracked(match: re.Match[str]) -> str:
            link = self._link_of(match.group(2) or match.group(3) or match.group(4) or "")
            if link is None:
                return match.group()
            link_id, url = link
            if link_id not in self._registered:
                unregistered[link_id] = url
            return f'{match.group(1)}"{click_url(self._base_url, self._secret, job_id, link_id)}"'

        rewritten = _ANCHOR_HREF.sub(tracked, message_html)
        pixel_url = open_pixel_url(self._base_url, self._secret, job_id)
        return _with_pixel(rewritten, pixel_url), unregistered

    async def apply(self, rendered: RenderedMessage, *, job_id: int) -> RenderedMessage:
        """``rendered`` with tracking in its HTML part; new links are in the database on return."""
        message_html, unregistered = self.rewrite(rendered.html, job_id=job_id)
        if unregistered:
            await asyncio.to_thread(register_links, self._database, self.campaign_id, unregistered)
            if len(self._registered) >= _REGISTERED_LINKS_KEPT:
                self._registered.clear()
            self._registered.update(unregistered)
        return dataclasses.replace(rendered, html=message_html)

    def _link_of(self, href: str) -> tuple[int, str] | None:
        # The same hrefs come back in every message of a campaign: each is judged and hashed once.
        if href in self._link_by_href:
            return self._link_by_href[href]
        url = html.unescape(href).strip()
        link = (link_id_for(url), url) if self._is_tracked(url) else None
        if len(self._link_by_href) >= _REGISTERED_LINKS_KEPT:
            self._link_by_href.clear()
        self._link_by_href[href] = link
        return link

    def _is_tracked(self, url: str) -> bool:
        lowered = url[:8].lower()
        if not (lowered.startswith("http://") or lowered.startswith("https://")):
            return False
        if url.startswith(self._own_prefixes):
            return False
        try:
            return bool(urlsplit(url).netloc)
        except ValueError:  # a malformed IPv6 host: sent as written, not tracked
            return False


def register_links(database: Database, campaign_id: int, links: Mapping[int, str]) -> None:
    """Write links that may not be in ``campaign_links`` yet; ones already there are kept."""
    with database.session() as session:
        now = utc_now()
        rows = [
            {"campaign_id": campaign_id, "id": link_id, "url": url, "created_at": now}
            for link_id, url in links.items()
        ]
        session.execute(conflict_insert(session, CampaignLink).on_conflict_do_nothing(), rows)


def _with_pixel(message_html: str, url: str) -> str:
    # At the end of the body, where it cannot move anything the reader sees. Gmail clips messages
    # over about 100 KB and never loads what it cut, so opens of longer messages go uncounted.
    ends = list(_BODY_END.finditer(message_html))
    if not ends:
        return message_html + pixel_tag(url)
    at = ends[-1].start()
    return message_html[:at] + pixel_tag(url) + message_html[at:]
