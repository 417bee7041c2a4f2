"""Page text in English and Simplified Chinese, chosen by `?lang=`, a cookie, or Accept-Language, and
the log's times as each language's pages show them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aiohttp import web
from markupsafe import Markup, escape

from ledger.envelopes.wording import DETAILS as DETAILS
from ledger.envelopes.wording import EVENTS as EVENTS

LANGS = ("en", "zh-CN")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "site": "Contract evidence portal",
        "check_title": "Check a contract",
        "enter_code": "Enter the code printed under the QR code",
        "code_placeholder": "e.g. ABCDE-FGHIJ-KMNPQ-RSTVW",
        "check": "Check",
        "or_file": "Or check a file: it is hashed in your browser; only its SHA-256 is sent.",
        "file_result_found": ("A document with this fingerprint is registered in the log. That alone does not "
                              "say whether a contract is valid, withdrawn or void: scan the QR code on your copy "
                              "to see its status."),
        "file_result_none": "No registered document has this fingerprint.",
        "file_kind_original": "It is the original of a document.",
        "file_kind_signed": "It is a document as signed by party {n} (the signed PDF registered with that signature).",
        "file_kind_scan": "It is the registered scan of a printed paper copy (copy {n}).",
        "file_result_error": "The file could not be checked just now (error {status}); try again later.",
        "status_VALID": "VALID - signed by all parties",
        "status_IN PROGRESS": "IN PROGRESS - not signed by every party yet",
        "status_WITHDRAWN": "WITHDRAWN - this contract was withdrawn before completion",
        "status_DECLINED": "DECLINED - a party declined to sign",
        "status_VOID": "VOID - this contract was voided",
        "status_UNKNOWN CODE": "UNKNOWN CODE - no contract has this code",
        "looked_up": "Code looked up:",
        "unknown_help": "Check the code for typos. A code that is not found here may come from a forged sticker.",
        "void_detail": "Voided on {date}; every signing party consented.",
        "title": "Title",
        "document": "Document",
        "sha256": "SHA-256",
        "copy": "Printed copy",
        "copy_of": "This QR code belongs to printed copy no. {n} of this document.",
        "parties": "Parties",
        "role_signer": "signer",
        "role_cc": "copy recipient",
        "order": "order",
        "signed": "signed",
        "declined": "declined",
        "pending": "not signed yet",
        "not_signed": "did not sign",
        "timeline": "Timeline",
        "parties_columns": "Name (people's names partly hidden) · role · signing order · outcome",
        "timeline_columns": "Time · event · party · details",
        "seals": "Seals used",
        "seals_help": ("Which seal each party used: its kind, its name in the organisation's seal registry and the "
                       "start of its fingerprint (the SHA-256 of its certificate, or of the scan of its impression), "
                       "which the signed events hold."),
        "seals_columns": "Party · kind · seal · fingerprint",
        "seal_unregistered": "(not in the registry)",
        "times_note": ("Times are given to the second in your device's time zone (in UTC when JavaScript is off);"
                       " point at a time for the exact UTC time the log holds."),
        "time_shown": "{time} {zone}",
        "copy_row": "copy {n} of document {document}",
        "copy_this": "copy {n} of document {document} (this copy)",
        "compare": "Compare your copy",
        "compare_help": "Pick your file: it is hashed in your browser and compared with the registered fingerprint.",
        "match": "MATCH - your file is identical to the registered document.",
        "mismatch": "MISMATCH - your file differs from the registered document and every registered version of it.",
        "match_signed": "MATCH - your file is the version of this document signed by party {n}, as the log registers it.",
        "match_scan": "MATCH - your file is the registered scan of paper copy {n} of this document.",
        "match_scan_any": "MATCH - your file is a registered scan of a paper copy of this document.",
        "match_sealed": "MATCH - your file is this document as sealed by the platform (its e-seal), as the log registers it.",
        "file_kind_sealed": "It is a document as sealed by the platform (its e-seal).",
        "download": "Download the original",
        "download_code": "Download with the access code",
        "access_code": "Access code",
        "no_download": "The original is not available for download.",
        "error_forbidden": "The access code is wrong. Check it and try again.",
        "error_not_found": "The original is not available for download here.",
        "error_rate_limited": "Too many requests came from your network. Wait a moment and try again.",
        "error_request_timeout": "The form took too long to arrive. Try again.",
        "error_other": "This request could not be answered (error {status}).",
        "sig_check": "Check the signatures of this PDF",
        "sig_check_help": ("Only when you ask: the PDF itself is sent to this portal, its signatures are checked "
                           "against the certificates it trusts, and the file is deleted at once; it is not stored."),
        "sig_pending": "Checking the signatures...",
        "sig_title": "Signatures of a PDF",
        "sig_none": "NO SIGNATURE - this PDF is not signed.",
        "sig_all_ok": "VERIFIED - every signature is intact and trusted, and the document was not changed after signing.",
        "sig_not_ok": "NOT VERIFIED - a signature below failed a check: do not rely on it.",
        "sig_judged": ("Checked at {time} (the server's time), without the network, against this ledger's seal "
                       "certificate authority, its time-stamp authority and the certificates it is set to trust."),
        "sig_file": "The file",
        "sig_bytes": "{size} bytes",
        "sig_registered": "Registered version",
        "sig_not_registered": "Not a registered version of any document.",
        "sig_signature": "Signature {n} ({field})",
        "sig_signer": "Signer",
        "sig_issuer": "Certificate issuer",
        "sig_serial": "Certificate serial number",
        "sig_signing_time": "Signing time (the signer's claim)",
        "sig_not_given": "not given",
        "sig_tsa": "Time-stamp",
        "sig_tsa_by": "{time}, by {tsa}",
        "sig_tsa_none": "none: the signing time is only the signer's claim",
        "sig_tsa_bad": "NOT VALID",
        "sig_intact": "Intact (the signed bytes and the signature match)",
        "sig_trusted": "Trusted (the signer's certificate chains to a trusted root)",
        "sig_changed": "Changed after signing",
        "sig_changed_yes": "YES - the document was changed after this signature",
        "sig_changed_no": "no",
        "sig_yes": "yes",
        "sig_no": "NO",
        "sig_revision": "Signed revision",
        "sig_revision_of": "revision {n}, {size} bytes",
        "sig_again": "Check another file",
        "sig_result_error": "The signatures could not be checked just now (error {status}); try again later.",
        "error_not_pdf": ("This file could not be checked: it is not a PDF, or it is encrypted, damaged, or too "
                          "complex to check in time."),
        "error_too_large": "This file is too large to be checked here.",
        "error_unsupported_media_type": "Send a PDF file.",
        "error_bad_form": "Pick one PDF file, then ask for the check.",
        "back_to_copy": "Back to the contract's page",
        "verify_title": "Check in your browser",
        "verify_pending": "Checking the proofs in your browser...",
        "verify_ok": "Verified: this page matches the signed log.",
        "verify_ok_more": "This printed copy, its status, the document's fingerprint and size, the parties' roles and"
                          " signatures and every row of the timeline are in the log checkpoint {size}, signed by the"
                          " log key pinned in your QR code. The title and the names are as this portal states them"
                          " (the log holds only their fingerprints).",
        "verify_unpinned": "Checked, but not against the key in your QR code: scan the QR code on your paper.",
        "verify_unpinned_more": "Checked in your browser against checkpoint {size}, but with a log key this server"
                                " supplied: this address carries no key pin. Scan the QR code on your paper to check"
                                " against the key it pins.",
        "verify_more": "What was checked",
        "status_failed": "NOT VERIFIED - do not rely on this page",
        "stated": "As this portal states it: this page does not check it.",
        "compare_wait": "Available once the check above has passed.",
        "compare_failed": "Not available: the check above failed.",
        "verify_fail": "VERIFICATION FAILED: {reason}. Do not trust this page.",
        "verify_nojs": "Turn on JavaScript to verify the proofs in your browser.",
        "anchors": "Trusted time",
        "anchors_help": ("An RFC 3161 time-stamp proves that these events existed no later than the time below. "
                         "The times in the timeline are the ledger's own clock."),
        "no_anchor": "Not yet anchored: the next time-stamp will cover these events.",
        "witnesses": "Witnesses",
        "local_tsa": "local TSA, not accredited",
        "no_witness": "No witness has cosigned a checkpoint holding these events yet.",
        "cosigned": "cosigned at {time} a checkpoint of {size} entries holding these events",
        "printed_domain": "Check that the address bar shows {domain} and that this code matches your paper: {code}.",
        "language": "中文",
        "log_link": "Log: {origin}",
    },
    "zh-CN": {
        "site": "合同存证查验平台",
        "check_title": "查验合同",
        "enter_code": "请输入二维码下方印刷的查验码",
        "code_placeholder": "例如 ABCDE-FGHIJ-KMNPQ-RSTVW",
        "check": "查验",
        "or_file": "或查验文件：在您的浏览器中计算文件的哈希值，只发送其 SHA-256 值，不上传文件。",
        "file_result_found": "日志中登记有此指纹的文件。仅凭这一点无法判断合同是否有效、已撤回或已作废：请扫描您所持文件上的二维码查看其状态。",
        "file_result_none": "未找到具有此指纹的已登记文件。",
        "file_kind_original": "它是某一登记文件的原件。",
        "file_kind_signed": "它是参与方 {n} 签署后的文件（随该签署登记的已签署 PDF）。",
        "file_kind_scan": "它是某份纸质打印件的登记扫描件（第 {n} 份）。",
        "file_result_error": "暂时无法查验此文件（错误 {status}），请稍后再试。",
        "status_VALID": "有效 - 各方均已签署",
        "status_IN PROGRESS": "签署中 - 尚有签署方未签署",
        "status_WITHDRAWN": "已撤回 - 该合同在签署完成前已被撤回",
        "status_DECLINED": "已拒签 - 有签署方拒绝签署",
        "status_VOID": "已作废 - 该合同已被作废",
        "status_UNKNOWN CODE": "未知查验码 - 未找到与此查验码对应的合同",
        "looked_up": "所查验码：",
        "unknown_help": "请检查查验码是否输入有误。在此查不到的查验码可能来自伪造的二维码贴纸。",
        "void_detail": "已于{date} 作废；所有签署方均已同意。",
        "title": "合同名称",
        "document": "文件",
        "sha256": "SHA-256",
        "copy": "打印件",
        "copy_of": "此二维码属于该文件的第 {n} 份打印件。",
        "parties": "参与方",
        "role_signer": "签署人",
        "role_cc": "抄送人",
        "order": "签署顺序",
        "signed": "已签署",
        "declined": "已拒签",
        "pending": "尚未签署",
        "not_signed": "未签署",
        "timeline": "时间线",
        "parties_columns": "名称（个人姓名部分隐藏）· 角色 · 签署顺序 · 签署情况",
        "timeline_columns": "时间 · 事件 · 参与方 · 详情",
        "seals": "所用印章",
        "seals_help": "各参与方所用的印章：类型、在机构印章登记中的名称，以及已签名事件中记录的印章指纹（证书或印模扫描件的 SHA-256）的开头。",
        "seals_columns": "参与方 · 类型 · 印章 · 指纹",
        "seal_unregistered": "（未登记）",
        "times_note": "本页时间均为北京时间（UTC+8），精确到秒；将鼠标指针停在时间上，可查看日志记录的精确 UTC 时间。",
        "time_shown": "北京时间 {time}",
        "copy_row": "文件 {document} 的第 {n} 份打印件",
        "copy_this": "文件 {document} 的第 {n} 份打印件（即本份）",
        "compare": "比对您的文件",
        "compare_help": "选择您持有的文件：将在您的浏览器中计算其哈希值，并与登记的文件指纹比对。",
        "match": "一致 - 您的文件与登记文件完全相同。",
        "mismatch": "不一致 - 您的文件与登记文件及其所有登记版本均不同。",
        "match_signed": "一致 - 您的文件是参与方 {n} 签署后的版本，与日志登记相符。",
        "match_scan": "一致 - 您的文件是本文件第 {n} 份纸质打印件的登记扫描件。",
        "match_scan_any": "一致 - 您的文件是本文件某份纸质打印件的登记扫描件。",
        "match_sealed": "一致 - 您的文件是平台加盖电子印章后的本文件，与日志登记相符。",
        "file_kind_sealed": "它是平台加盖电子印章后的文件。",
        "download": "下载原件",
        "download_code": "凭访问码下载",
        "access_code": "访问码",
        "no_download": "原件不提供下载。",
        "error_forbidden": "访问码不正确，请核对后重试。",
        "error_not_found": "原件不在此提供下载。",
        "error_rate_limited": "来自您网络的请求过多，请稍候再试。",
        "error_request_timeout": "表单提交超时，请重试。",
        "error_other": "无法处理此请求（错误 {status}）。",
        "sig_check": "查验此 PDF 的签名",
        "sig_check_help": "仅在您要求时：PDF 文件本身会发送至本平台，按本平台信任的证书查验其签名，查验后立即删除，不会保存。",
        "sig_pending": "正在查验签名……",
        "sig_title": "PDF 的签名",
        "sig_none": "无签名 - 此 PDF 未经签名。",
        "sig_all_ok": "已验证 - 每个签名均完整且可信，签署后文件未被修改。",
        "sig_not_ok": "未通过验证 - 下列签名中有未通过的检查项：请勿依赖。",
        "sig_judged": "查验时间：{time}（服务器时间），未联网，依据本平台的电子印章证书机构、时间戳服务及所配置信任的证书。",
        "sig_file": "文件",
        "sig_bytes": "{size} 字节",
        "sig_registered": "已登记的版本",
        "sig_not_registered": "不是任何文件的已登记版本。",
        "sig_signature": "签名 {n}（{field}）",
        "sig_signer": "签署者",
        "sig_issuer": "证书颁发者",
        "sig_serial": "证书序列号",
        "sig_signing_time": "签署时间（签署者自称）",
        "sig_not_given": "未提供",
        "sig_tsa": "可信时间戳",
        "sig_tsa_by": "{time}，由 {tsa} 签发",
        "sig_tsa_none": "无：签署时间仅为签署者自称",
        "sig_tsa_bad": "无效",
        "sig_intact": "完整（签署内容与签名相符）",
        "sig_trusted": "可信（签署者证书链至受信任的根证书）",
        "sig_changed": "签署后是否被修改",
        "sig_changed_yes": "是 - 此签名之后文件被修改过",
        "sig_changed_no": "否",
        "sig_yes": "是",
        "sig_no": "否",
        "sig_revision": "所签署的版本",
        "sig_revision_of": "修订 {n}，{size} 字节",
        "sig_again": "查验其他文件",
        "sig_result_error": "暂时无法查验签名（错误 {status}），请稍后再试。",
        "error_not_pdf": "无法查验此文件：它不是 PDF，或已加密、已损坏，或过于复杂而无法及时查验。",
        "error_too_large": "此文件过大，无法在此查验。",
        "error_unsupported_media_type": "请发送 PDF 文件。",
        "error_bad_form": "请选择一个 PDF 文件，然后再要求查验。",
        "back_to_copy": "返回合同页面",
        "verify_title": "在您的浏览器中验证",
        "verify_pending": "正在您的浏览器中验证证明……",
        "verify_ok": "已在您的浏览器中验证：本页内容与已签名的日志一致。",
        "verify_ok_more": "此打印件、其状态、文件指纹与大小、各参与方的角色与签署情况以及时间线的每一行，"
                          "都包含在日志检查点 {size} 中，且该检查点的签名已用您二维码中固定的日志公钥验证。"
                          "合同名称和参与方名称以本平台所述为准（日志中只保存其指纹）。",
        "verify_unpinned": "已核对，但未对照您二维码中的公钥：请扫描纸质文件上的二维码。",
        "verify_unpinned_more": "已在您的浏览器中对照检查点 {size} 验证，但所用的日志公钥由本服务器提供：此网址不含公钥固定信息。"
                                "请扫描纸质文件上的二维码，以对照二维码中固定的公钥验证。",
        "verify_more": "验证了哪些内容",
        "status_failed": "未通过验证 - 请勿信任此页面",
        "stated": "以本平台所述为准：本页面未验证此项。",
        "compare_wait": "上方验证通过后可用。",
        "compare_failed": "不可用：上方验证未通过。",
        "verify_fail": "验证失败：{reason}。请勿信任此页面。",
        "verify_nojs": "请开启 JavaScript，以在浏览器中验证证明。",
        "anchors": "可信时间",
        "anchors_help": "RFC 3161 可信时间戳证明这些事件不晚于下列时间即已存在。时间线中的时间为本平台自身时钟的记录。",
        "no_anchor": "尚未加盖可信时间戳：下一次时间戳将涵盖这些事件。",
        "witnesses": "见证方",
        "local_tsa": "本地时间戳服务，非经认证的时间戳机构",
        "no_witness": "尚无见证方联署包含这些事件的检查点。",
        "cosigned": "于{time} 联署了包含这些事件的检查点（共 {size} 条记录）",
        "printed_domain": "请确认地址栏显示 {domain}，且此查验码与纸质文件上的一致：{code}。",
        "language": "English",
        "log_link": "日志：{origin}",
    },
}
assert set(TEXT["en"]) == set(TEXT["zh-CN"])

# Why the in-browser check failed (portal/static/verify.js throws these codes; {name} is filled in).
REASONS: dict[str, dict[str, str]] = {
    "en": {
        "http": "the server answered {status}",
        "outside": "entry {index} is outside the tree",
        "proof_hash": "a proof hash is not 32 bytes",
        "proof_long": "the inclusion proof is too long",
        "proof_short": "the inclusion proof is too short",
        "key_format": "the log key is not an Ed25519 note key",
        "key_id": "the log key's ID does not match the key",
        "key_pin": "the log key differs from the one pinned in your QR code",
        "unsigned": "the {what} has no signatures",
        "sig_line": "a signature line of the {what} is malformed",
        "sig_bad": "the {what} signature does not verify",
        "not_log_key": "the {what} is not signed by the log key",
        "what_checkpoint": "checkpoint",
        "what_head": "envelope statement",
        "other_log": "the checkpoint is for another log",
        "no_head": "the server sent no signed statement of the envelope's events",
        "head_format": "the envelope statement is malformed",
        "head_size": "the envelope statement is about another checkpoint",
        "head_time": "the envelope statement has no valid time",
        "head_stale": "the log's statement about this envelope was signed at {signed}, too far from this device's"
                      " time ({now}): it may be stale; check your clock",
        "not_included": "event {index} is not in the signed log",
        "chain": "the events do not form one chain",
        "head_env": "the log's statement is about another envelope",
        "head_events": "the log says this envelope has {logged} events; the server showed {shown}",
        "status": "the signed events say \"{signed}\", the page says \"{shown}\"",
        "banner_status": "the banner differs from the signed events",
        "banner": "the banner shows another status than the signed events",
        "no_document": "the document is not registered in the signed events",
        "doc_shown": "the page shows another document hash",
        "doc_compare": "the page compares your file with another document",
        "doc_pin": "the document differs from the one pinned in your QR code",
        "unexpected": "the check could not be completed ({detail})",
        "timeout": "the server did not answer in time",
        "pin_format": "the pins in this address are malformed",
        "code_path": "this page's address holds no copy code",
        "not_this_copy": "none of the signed events printed the copy with this code",
        "void_shown": "the page shows another void date than the signed events",
        "doc_size": "the page shows another document size than the signed events",
        "copy_shown": "the page shows another copy number than the signed events",
        "parties": "the parties table differs from the signed events",
        "timeline": "row {index} of the timeline differs from the signed events",
        "seals": "the seals table differs from the signed events",
        "st_draft": "IN PROGRESS",
        "st_sent": "IN PROGRESS",
        "st_completed": "VALID",
        "st_withdrawn": "WITHDRAWN",
        "st_declined": "DECLINED",
        "st_voided": "VOID",
    },
    "zh-CN": {
        "http": "服务器返回了 {status}",
        "outside": "记录 {index} 不在该默克尔树中",
        "proof_hash": "证明中有一个哈希值不是 32 字节",
        "proof_long": "包含证明过长",
        "proof_short": "包含证明过短",
        "key_format": "日志公钥不是 Ed25519 签名笔记公钥",
        "key_id": "日志公钥的标识与公钥不符",
        "key_pin": "日志公钥与您二维码中固定的公钥不同",
        "unsigned": "{what}没有签名",
        "sig_line": "{what}的某个签名行格式有误",
        "sig_bad": "{what}的签名验证失败",
        "not_log_key": "{what}不是由日志密钥签名的",
        "what_checkpoint": "检查点",
        "what_head": "签署流程状态声明",
        "other_log": "该检查点属于另一个日志",
        "no_head": "服务器没有提供该签署流程事件的签名声明",
        "head_format": "签署流程状态声明格式有误",
        "head_size": "签署流程状态声明针对的是另一个检查点",
        "head_time": "签署流程状态声明没有有效的时间",
        "head_stale": "日志关于该签署流程的声明签署于 {signed}，与本设备时间（{now}）相差过大：声明可能已过期，请检查您的时钟",
        "not_included": "事件 {index} 不在已签名的日志中",
        "chain": "这些事件没有构成一条完整的链",
        "head_env": "日志的声明针对的是另一个签署流程",
        "head_events": "日志显示该签署流程有 {logged} 个事件；服务器只展示了 {shown} 个",
        "status": "已签名的事件显示为“{signed}”，页面显示为“{shown}”",
        "banner_status": "页面横幅与已签名的事件不符",
        "banner": "页面横幅显示的状态与已签名的事件不符",
        "no_document": "该文件未登记在已签名的事件中",
        "doc_shown": "页面显示的文件哈希与登记的不同",
        "doc_compare": "页面用于比对您文件的是另一个文件",
        "doc_pin": "该文件与您二维码中固定的文件不同",
        "unexpected": "无法完成验证（{detail}）",
        "timeout": "服务器未能及时响应",
        "pin_format": "此网址中的固定信息格式有误",
        "code_path": "此页面网址中没有打印件查验码",
        "not_this_copy": "已签名的事件中没有打印此查验码所对应打印件的记录",
        "void_shown": "页面显示的作废日期与已签名的事件不符",
        "doc_size": "页面显示的文件大小与已签名的事件不符",
        "copy_shown": "页面显示的打印件编号与已签名的事件不符",
        "parties": "参与方表格与已签名的事件不符",
        "timeline": "时间线第 {index} 行与已签名的事件不符",
        "seals": "印章表与已签名的事件不符",
        "st_draft": "签署中",
        "st_sent": "签署中",
        "st_completed": "有效",
        "st_withdrawn": "已撤回",
        "st_declined": "已拒签",
        "st_voided": "已作废",
    },
}
assert set(REASONS["en"]) == set(REASONS["zh-CN"])

# The timeline's words for the log's event types and for the methods, channels and kinds of a row
# (`ledger.envelopes.wording`, which the evidence report shares): the page shows these, and verify.js
# compares them with the signed events through /texts/<lang>.js; the JSON view keeps the log's own values.


def choose(request: web.Request) -> str:
    q = request.query.get("lang")
    if q in LANGS:
        return q
    c = request.cookies.get("lang")
    if c in LANGS:
        return c
    for part in request.headers.get("Accept-Language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "en"


# The zone a page shows the log's times in: Beijing time (China Standard Time, UTC+8 all year) on a
# Chinese page; on an English page the reader's own, which only the page's script knows (verify.js
# shows it): the page as the server makes it says UTC. Either way to the second, and labelled.
TIME_ZONE: dict[str, timedelta | None] = {"en": None, "zh-CN": timedelta(hours=8)}
_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?Z")  # verify.js parseTime: the same


def _instant(iso: str) -> datetime | None:
    m = _TIME.fullmatch(iso)
    if m is None:
        return None
    year, month, day, hour, minute, second = map(int, m.groups())
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # no calendar has this day or second
        return None
    return moment if moment.year < 9999 else None  # in every zone, a date of the calendar


def shown_time(iso: str, lang: str) -> str:
    """A time of the log (RFC 3339 UTC) as a page in `lang` shows it without its script: to the second
    (cut, as a clock reads), in TIME_ZONE's zone or else UTC. Text that is no such time stays as it is."""
    moment = _instant(iso)
    if moment is None:
        return iso
    offset = TIME_ZONE[lang]
    at = moment + offset if offset is not None else moment
    text = f"{at.year:04d}-{at.month:02d}-{at.day:02d} {at.hour:02d}:{at.minute:02d}:{at.second:02d}"
    return TEXT[lang]["time_shown"].format(time=text, zone="UTC")


def time_html(iso: str, lang: str) -> Markup:
    """A `<time>` element for a time of the log: `shown_time`, with the exact instant the log holds in
    its `datetime` (which verify.js compares with the signed entry) and in its title."""
    if _instant(iso) is None:
        return escape(iso)
    return Markup('<time datetime="{0}" title="{1} UTC">{2}</time>').format(
        iso, iso[:-1].replace("T", " "), shown_time(iso, lang))
