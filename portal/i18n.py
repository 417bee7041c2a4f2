"""Page text in English and Simplified Chinese, chosen by `?lang=`, a cookie, or Accept-Language."""

from __future__ import annotations

from aiohttp import web

LANGS = ("en", "zh-CN")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "site": "Contract evidence portal",
        "check_title": "Check a contract",
        "enter_code": "Enter the code printed under the QR code",
        "code_placeholder": "e.g. ABCDE-FGHIJ-KMNPQ-RSTVW",
        "check": "Check",
        "or_file": "Or check a file: it is hashed in your browser; only its SHA-256 is sent.",
        "file_result_found": "This file is registered.",
        "file_result_none": "No registered document has this fingerprint.",
        "status_VALID": "VALID - signed by all parties",
        "status_IN PROGRESS": "IN PROGRESS - not signed by every party yet",
        "status_WITHDRAWN": "WITHDRAWN - this contract was withdrawn before completion",
        "status_DECLINED": "DECLINED - a party declined to sign",
        "status_VOID": "VOID - this contract was voided",
        "status_UNKNOWN CODE": "UNKNOWN CODE - no contract has this code",
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
        "timeline": "Timeline",
        "compare": "Compare your copy",
        "compare_help": "Pick your file: it is hashed in your browser and compared with the registered fingerprint.",
        "match": "MATCH - your file is identical to the registered document.",
        "mismatch": "MISMATCH - your file differs from the registered document.",
        "download": "Download the original",
        "download_code": "Download with the access code",
        "access_code": "Access code",
        "no_download": "The original is not available for download.",
        "verify_title": "Check in your browser",
        "verify_pending": "Checking the proofs in your browser...",
        "verify_ok": "Verified in your browser: every event above is in the log checkpoint {size}, signed by the log key.",
        "verify_fail": "VERIFICATION FAILED: {reason}. Do not trust this page.",
        "verify_nojs": "Turn on JavaScript to verify the proofs in your browser.",
        "anchors": "Trusted time",
        "no_anchor": "Not yet anchored: the next time-stamp will cover these events.",
        "witnesses": "Witnesses",
        "local_tsa": "local TSA, not accredited",
        "no_witness": "No notary has cosigned a checkpoint holding these events yet.",
        "cosigned": "cosigned at {time} a checkpoint of {size} entries holding these events",
        "printed_domain": "Check that the address bar shows {domain} and that this code matches your paper: {code}.",
        "language": "中文",
        "log": "Log",
    },
    "zh-CN": {
        "site": "合同存证查验平台",
        "check_title": "查验合同",
        "enter_code": "请输入二维码下方印刷的查验码",
        "code_placeholder": "例如 ABCDE-FGHIJ-KMNPQ-RSTVW",
        "check": "查验",
        "or_file": "或查验文件：文件在您的浏览器中计算哈希，只发送其 SHA-256。",
        "file_result_found": "该文件已登记。",
        "file_result_none": "没有已登记的文件具有此指纹。",
        "status_VALID": "有效 - 各方均已签署",
        "status_IN PROGRESS": "签署中 - 尚未由各方全部签署",
        "status_WITHDRAWN": "已撤回 - 该合同在完成前被撤回",
        "status_DECLINED": "已拒签 - 有一方拒绝签署",
        "status_VOID": "已作废 - 该合同已作废",
        "status_UNKNOWN CODE": "未知查验码 - 没有合同使用此查验码",
        "unknown_help": "请检查查验码是否输入有误。此处查不到的查验码可能来自伪造的贴纸。",
        "void_detail": "于 {date} 作废；所有签署方均已同意。",
        "title": "标题",
        "document": "文件",
        "sha256": "SHA-256",
        "copy": "打印份",
        "copy_of": "此二维码属于该文件的第 {n} 份打印件。",
        "parties": "签署方",
        "role_signer": "签署人",
        "role_cc": "抄送人",
        "order": "顺序",
        "signed": "已签署",
        "declined": "已拒签",
        "pending": "尚未签署",
        "timeline": "时间线",
        "compare": "比对您的文件",
        "compare_help": "选择您的文件：它在您的浏览器中计算哈希，并与登记的指纹比对。",
        "match": "一致 - 您的文件与登记文件完全相同。",
        "mismatch": "不一致 - 您的文件与登记文件不同。",
        "download": "下载原件",
        "download_code": "凭访问码下载",
        "access_code": "访问码",
        "no_download": "原件不提供下载。",
        "verify_title": "在您的浏览器中核验",
        "verify_pending": "正在您的浏览器中验证证明……",
        "verify_ok": "已在您的浏览器中验证：以上每个事件都在日志检查点 {size} 中，并由日志密钥签名。",
        "verify_fail": "验证失败：{reason}。请勿信任此页面。",
        "verify_nojs": "请开启 JavaScript 以在浏览器中验证证明。",
        "anchors": "可信时间",
        "no_anchor": "尚未锚定：下一次时间戳将覆盖这些事件。",
        "witnesses": "见证方",
        "local_tsa": "本地时间戳服务，非认证机构",
        "no_witness": "尚无见证方（公证机构）联署包含这些事件的检查点。",
        "cosigned": "于 {time} 联署了包含这些事件的检查点（共 {size} 条记录）",
        "printed_domain": "请确认地址栏显示 {domain}，且此查验码与纸质文件一致：{code}。",
        "language": "English",
        "log": "日志",
    },
}
assert set(TEXT["en"]) == set(TEXT["zh-CN"])


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
