"""`GET /texts/{lang}.js`: the words verify.js writes and compares with the page, as a script.

They are part of the page's script, not of the data it checks: were they in the page (as data
attributes), a server rewriting a fact could rewrite the words it is compared with too.
"""

from __future__ import annotations

import json
from datetime import timedelta

from aiohttp import web

from ledger.envelopes.public import STATUS_LABEL
from portal.pages import i18n

routes = web.RouteTableDef()

# the page's words verify.js compares with what the signed events say, and the words it writes itself
CHECKED = ("copy_of", "void_detail", "role_signer", "role_cc", "order", "signed", "declined", "pending", "not_signed",
           "time_shown", "copy_row", "copy_this", "status_failed", "verify_pending", "verify_ok", "verify_ok_more",
           "verify_unpinned", "verify_unpinned_more", "verify_fail", "compare_failed", "match", "mismatch",
           "match_signed", "match_scan", "match_scan_any", "match_sealed")


def script(lang: str) -> bytes:
    t = i18n.TEXT[lang]
    zone = i18n.TIME_ZONE[lang]
    texts = {"lang": lang, "labels": {st: t["status_" + label] for st, label in STATUS_LABEL.items()},
             # the zone times are shown in, in minutes east of UTC; null: the device's own
             "time_offset": None if zone is None else zone // timedelta(minutes=1),
             "reasons": i18n.REASONS[lang], "events": i18n.EVENTS[lang], "details": i18n.DETAILS[lang],
             **{k: t[k] for k in CHECKED}}
    body = json.dumps(texts, ensure_ascii=False, sort_keys=True)
    return f'"use strict";\n// generated from portal/i18n.py\nconst EL_TEXT = {body};\n'.encode()


SCRIPTS = {lang: script(lang) for lang in i18n.LANGS}


@routes.get(r"/texts/{lang:en|zh-CN}.js")
async def texts(request: web.Request) -> web.Response:
    # (cached by the address a page names it with: portal.app.security_headers)
    return web.Response(body=SCRIPTS[request.match_info["lang"]], content_type="text/javascript", charset="utf-8")
