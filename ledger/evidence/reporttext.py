"""The wording of the evidence report (`ledger.evidence.report`) in English and Simplified Chinese.

Labels, statuses, check names, and the two fixed sections: how the system keeps evidence and how to
verify it. The names of event types, methods and channels are `ledger.envelopes.wording`'s, which the
portal shows too. Text here is trusted markup for reportlab's Paragraph (`<b>`, `<br/>`, `&amp;`); values from the
facts are escaped by the report and filled into `{...}` after escaping.
"""

from __future__ import annotations

LANGS = ("en", "zh-CN")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "doc_title": "Electronic contract evidence report",
        "subtitle": "The signing of one contract, as recorded in an append-only, publicly verifiable log",
        "verdict_ok": "VERIFIED",
        "verdict_bad": "NOT VERIFIED",
        "verdict_ok_more": "The export checked its own evidence before writing this report: all {n} checks passed.",
        "verdict_bad_more": ("The export checked its own evidence: {bad} of {n} checks failed (see the self-check "
                             "below). Do not rely on this evidence before an expert has examined it."),
        "interim": "INTERIM - the contract is still in progress",
        "interim_more": ("This report holds the events up to the moment it was generated; later events are not in "
                         "it. Export the evidence again once the contract is completed."),
        "status": "Status of the contract",
        "ref": "Envelope reference",
        "title": "Title",
        "tenant": "Account (tenant)",
        "env": "Envelope ID in the log",
        "created": "Created",
        "generated": "Report generated",
        "files": "Files in the evidence bundle",
        "portal": "Online check",
        "qr_caption": "Scan to see this contract's status and proofs online",
        "times_note": ("Times are given to the second in UTC, each followed by the instant the log holds "
                       "(RFC 3339, cut to the second)."),
        "zone": "(UTC)",
        "conventions": ("Values are shown as the bundle holds them. One longer than {cut} characters is cut and marked "
                        "\"… [+N]\", N being the number of characters left out; the bundle holds it whole. A character "
                        "the font cannot show, or one that is invisible or changes the direction of text, is shown as "
                        "its Unicode code point, such as [U+202E]."),
        "checks_title": "Self-check of the export",
        "col_check": "Check",
        "col_result": "Result",
        "col_detail": "Detail",
        "passed": "passed",
        "failed": "FAILED",
        "no_checks": "No check was recorded.",
        "parties_title": "Parties",
        "parties_note": ("Names, titles and contact details are not in the public log: it holds only salted "
                         "SHA-256 commitments to them. Their openings are in the bundle's <b>openings/</b> "
                         "folder, so each value shown here can be checked against its commitment."),
        "col_no": "#",
        "col_name": "Name",
        "col_role": "Role and type",
        "col_contact": "Contact",
        "col_order": "Signing order",
        "col_methods": "Identity verification",
        "col_signed": "Signed",
        "no_parties": "No party has been added to this contract.",
        "not_signed": "not signed",
        "role_signer": "signer",
        "role_cc": "copy recipient",
        "party_n": "party {n}",
        "documents_title": "Documents",
        "document_n": "Document {n}: {name}",
        "doc_ref": "Reference",
        "doc_sha256": "SHA-256 of the original",
        "doc_size": "Size",
        "bytes": "{n} bytes",
        "doc_pages": "Pages",
        "no_documents": "No document has been added to this contract.",
        "col_version": "Version",
        "col_label": "Label",
        "col_sha256": "SHA-256",
        "col_file": "File in the bundle",
        "kind_original": "original",
        "kind_signed": "signed",
        "kind_sealed": "sealed by the platform (e-seal)",
        "kind_scan": "scan of a paper copy",
        "signatures_of": "Signatures in version {n} ({kind})",
        "no_signature": "Version {n} ({kind}) holds no digital signature.",
        "col_signer": "Signer",
        "col_issuer": "Certificate issuer",
        "col_serial": "Certificate serial",
        "col_signing_time": "Signing time (the signer's claim)",
        "col_tsa": "Time-stamp authority",
        "col_tsa_time": "Time-stamped at",
        "col_intact": "Intact",
        "yes": "yes",
        "no": "NO",
        "timeline_title": "Timeline of events",
        "timeline_note": ("Every event of this contract, in the order the log recorded it. Times are the ledger's "
                          "own clock; the trusted time of an event is the RFC 3161 time-stamp of a checkpoint "
                          "that covers it (see <b>Cryptographic evidence</b>). Leaf hashes are abbreviated; "
                          "Appendix A gives them in full."),
        "col_seq": "Seq.",
        "col_time": "Time",
        "col_event": "Event",
        "col_party": "Party",
        "col_method": "Method",
        "col_channel": "Channel",
        "col_index": "Log index",
        "col_leaf": "Leaf hash",
        "no_events": "The log holds no event of this contract.",
        "crypto_title": "Cryptographic evidence",
        "crypto_note": ("The log signs <b>checkpoints</b> (its size and Merkle root hash) with its key. "
                        "An event is in a checkpoint when its log index is below the checkpoint's tree size; "
                        "its inclusion proof (Appendix A) links its leaf hash to that root. <b>Anchors</b> are "
                        "RFC 3161 time-stamps of checkpoints: the events a checkpoint covers existed no later "
                        "than the time-stamp's genTime. <b>Witnesses</b> cosign checkpoints after checking that "
                        "each extends the one they saw before."),
        "log_origin": "Log (origin)",
        "log_key": "Log verifier key",
        "checkpoints": "Signed checkpoints",
        "anchors": "RFC 3161 time-stamps (anchors)",
        "cosignatures": "Witness cosignatures",
        "col_size": "Tree size",
        "col_root": "Root hash",
        "col_policy": "Policy",
        "col_token_serial": "Serial number",
        "col_gen_time": "genTime",
        "col_witness": "Witness",
        "col_cosigned": "Cosigned at",
        "none_yet": "None yet.",
        "local_tsa": "local TSA, not accredited",
        "keeping_title": "How this system keeps evidence",
        "verify_title": "How to verify this evidence",
        "appendix_title": "Appendix A: leaf hashes and inclusion proofs",
        "appendix_note": ("For each event: its full leaf hash, SHA-256(0x00 || entry) (RFC 9162 §2.1.1), and "
                          "the hashes of its inclusion proof in a checkpoint of the given tree size, as in the "
                          "bundle's <b>proofs/</b> folder."),
        "col_proof": "Inclusion proof hashes",
        "no_proof": "no proof in the bundle",
        "anchor_commands": "For the anchors of this bundle:",
        "footer": "Evidence report {ref}",
        "page": "page {x} of {y}",
        "attachment": "The evidence bundle's manifest: every file with its SHA-256",
    },
    "zh-CN": {
        "doc_title": "电子合同存证报告",
        "subtitle": "一份合同的签署过程，取自只增不改、可公开验证的存证日志",
        "verdict_ok": "已验证",
        "verdict_bad": "未通过验证",
        "verdict_ok_more": "导出时已对证据包自行核验后再生成本报告：{n} 项检查全部通过。",
        "verdict_bad_more": "导出时对证据包自行核验：{n} 项检查中有 {bad} 项未通过（见下方“导出自检”）。在专家审查之前，请勿依赖本证据。",
        "interim": "中期报告 - 合同仍在签署中",
        "interim_more": "本报告仅包含生成时已发生的事件，此后的事件不在其中。合同签署完成后请重新导出证据。",
        "status": "合同状态",
        "ref": "合同编号",
        "title": "合同名称",
        "tenant": "所属账户（租户）",
        "env": "日志中的合同标识",
        "created": "创建时间",
        "generated": "报告生成时间",
        "files": "证据包文件数",
        "portal": "在线查验",
        "qr_caption": "扫码在线查看合同状态与证明",
        "times_note": "时间均为北京时间（UTC+8），精确到秒，其后为日志记录的对应 UTC 时刻（RFC 3339 格式，精确到秒）。",
        "zone": "(北京时间)",
        "conventions": ("各项内容按证据包中的原样显示。超过 {cut} 个字符的内容会被截断，并标注“… [+N]”（N 为省略的字符数），"
                        "完整内容见证据包。字体无法显示的字符，以及不可见或改变文字方向的字符，以其 Unicode 码位表示，"
                        "如 [U+202E]。"),
        "checks_title": "导出自检",
        "col_check": "检查项",
        "col_result": "结果",
        "col_detail": "说明",
        "passed": "通过",
        "failed": "未通过",
        "no_checks": "未记录任何检查。",
        "parties_title": "参与方",
        "parties_note": ("公开日志中不含姓名、合同名称和联系方式，只含其加盐 SHA-256 承诺值；承诺的原文在证据包的 "
                         "<b>openings/</b> 目录中，本节所列各项均可与其承诺值逐一核对。"),
        "col_no": "序号",
        "col_name": "名称",
        "col_role": "角色与类型",
        "col_contact": "联系方式",
        "col_order": "签署顺序",
        "col_methods": "身份认证方式",
        "col_signed": "签署时间",
        "no_parties": "该合同尚未添加参与方。",
        "not_signed": "未签署",
        "role_signer": "签署人",
        "role_cc": "抄送人",
        "party_n": "参与方 {n}",
        "documents_title": "合同文件",
        "document_n": "文件 {n}：{name}",
        "doc_ref": "文件编号",
        "doc_sha256": "原件 SHA-256",
        "doc_size": "大小",
        "bytes": "{n} 字节",
        "doc_pages": "页数",
        "no_documents": "该合同尚未添加文件。",
        "col_version": "版本",
        "col_label": "说明",
        "col_sha256": "SHA-256",
        "col_file": "证据包中的文件",
        "kind_original": "原件",
        "kind_signed": "签署版",
        "kind_sealed": "平台电子印章版",
        "kind_scan": "纸质件扫描件",
        "signatures_of": "版本 {n}（{kind}）中的签名",
        "no_signature": "版本 {n}（{kind}）中没有数字签名。",
        "col_signer": "签署者",
        "col_issuer": "证书颁发者",
        "col_serial": "证书序列号",
        "col_signing_time": "签署时间（签署者自称）",
        "col_tsa": "时间戳机构",
        "col_tsa_time": "时间戳时间",
        "col_intact": "完整",
        "yes": "是",
        "no": "否",
        "timeline_title": "签署过程时间线",
        "timeline_note": ("该合同的全部事件，按日志记录的顺序排列。事件时间为本平台自身时钟的记录；事件的可信时间以覆盖它的"
                          "检查点的 RFC 3161 时间戳为准（见“密码学证据”）。叶哈希为缩写，完整值见附录 A。"),
        "col_seq": "序号",
        "col_time": "时间",
        "col_event": "事件",
        "col_party": "参与方",
        "col_method": "认证方式",
        "col_channel": "签署渠道",
        "col_index": "日志序号",
        "col_leaf": "叶哈希",
        "no_events": "日志中没有该合同的事件。",
        "crypto_title": "密码学证据",
        "crypto_note": ("日志用其密钥对<b>检查点</b>（日志的大小及默克尔树根哈希）签名。日志序号小于检查点树大小的事件即包含在"
                        "该检查点中，其包含证明（附录 A）把事件的叶哈希与该根哈希联系起来。<b>锚定</b>是对检查点加盖的 "
                        "RFC 3161 可信时间戳：检查点所涵盖的事件不晚于时间戳的 genTime 即已存在。<b>见证方</b>在核实"
                        "新检查点是其此前所见检查点的延续后，才对其联署。"),
        "log_origin": "日志标识（origin）",
        "log_key": "日志验证公钥",
        "checkpoints": "已签名的检查点",
        "anchors": "RFC 3161 可信时间戳（锚定）",
        "cosignatures": "见证方联署",
        "col_size": "树大小",
        "col_root": "根哈希",
        "col_policy": "策略",
        "col_token_serial": "序列号",
        "col_gen_time": "时间戳时间（genTime）",
        "col_witness": "见证方",
        "col_cosigned": "联署时间",
        "none_yet": "暂无。",
        "local_tsa": "本地时间戳服务，非经认证的时间戳机构",
        "keeping_title": "本系统如何保存证据",
        "verify_title": "如何验证本证据",
        "appendix_title": "附录 A：叶哈希与包含证明",
        "appendix_note": ("每个事件的完整叶哈希，即 SHA-256(0x00 || 记录)（RFC 9162 §2.1.1），以及它在给定树大小的检查点中的"
                          "包含证明哈希，与证据包 <b>proofs/</b> 目录中的一致。"),
        "col_proof": "包含证明哈希",
        "no_proof": "证据包中无此证明",
        "anchor_commands": "本证据包中各锚定的命令：",
        "footer": "存证报告 {ref}",
        "page": "第 {x} 页 共 {y} 页",
        "attachment": "证据包清单：每个文件及其 SHA-256",
    },
}
assert set(TEXT["en"]) == set(TEXT["zh-CN"])

# The contract's status in words (the envelope's lifecycle, DESIGN.md §3).
# The names of the checks `verifier verify` makes (verifier/evidence), in the report's words; their details
# stay as the verifier wrote them (hashes, file names, sizes), in English, after what a check that passed
# establishes, in the reader's words (PASSED).
CHECKS: dict[str, dict[str, str]] = {
    "en": {},
    "zh-CN": {
        "manifest": "文件清单", "log key": "日志密钥", "checkpoint": "检查点", "events": "事件",
        "all events": "全部事件", "envelope head": "合同末事件声明", "cosignatures": "见证联署",
        "anchor": "可信时间戳", "anchors": "可信时间戳", "anchor renewal": "时间戳续期", "lifecycle": "生命周期重放",
        "status": "状态", "document": "文件", "document seal": "文件印章", "document signatures": "文件签名",
        "report": "报告", "report manifest": "报告内嵌清单", "report seal": "报告印章", "parties": "参与方",
        "timeline": "时间线", "times": "时间", "this copy": "本份副本", "page": "页面",
        "files": "文件完整性", "checkpoints": "检查点", "consistency": "一致性证明", "entries": "事件条目",
        "proofs": "包含证明", "openings": "承诺公开值", "documents": "文件版本", "TSA roots": "时间戳根证书",
        "seal roots": "印章根证书",
    },
}

# What each check establishes when it passes, for a reader of the Chinese report (English readers have the
# verifier's own detail). Every sentence must stay true of what the check checks (verifier/evidence).
PASSED: dict[str, dict[str, str]] = {
    "en": {},
    "zh-CN": {
        "files": "证据包中的每个文件都与清单所列的 SHA-256 哈希值和大小一致，没有文件被增加、删除或改动。",
        "manifest": "证据清单完整，可以读取。",
        "TSA roots": "时间戳机构的根证书可以读取。",
        "seal roots": "印章的根证书可以读取。",
        "log key": "日志公钥与证据包所声明的一致。",
        "checkpoints": "各检查点（日志签名的树头）均由日志密钥签名，内容完整。",
        "checkpoint": "检查点由日志密钥签名，签名有效。",
        "consistency": "检查点之间的一致性证明成立：日志只追加，从未改写。",
        "entries": "每个事件条目格式规范，并按顺序逐个相连，构成一条完整的链。",
        "proofs": "每个事件都在所证明的检查点的默克尔树中（包含证明成立）。",
        "envelope head": "日志对本合同最后一个事件的签名声明有效：证据包含有本合同的全部事件。",
        "lifecycle": "按合同生命周期规则重放全部事件，得出的状态与记录一致。",
        "openings": "参与方、标题等内容的加盐哈希承诺与日志中的承诺一致。",
        "anchors": "检查点的 RFC 3161 可信时间戳有效：上述事件不晚于时间戳时间已经存在。",
        "anchor": "这一 RFC 3161 可信时间戳有效，且其签发证书可追溯到受信任的根证书。",
        "anchor renewal": "时间戳续期有效：在原时间戳的证书到期之前已重新加盖时间戳。",
        "cosignatures": "见证方对检查点的联署签名有效。",
        "documents": "证据包中的文件与日志登记的文件版本哈希一致。",
        "document": "该文件与日志登记的版本哈希一致。",
        "document seal": "文件上的电子印章完整、可信，加盖印章之后文件没有被改动。",
        "document signatures": ("该文件版本中的电子签名（如有）完整、可信，签名之后没有不允许的改动；"
                                "没有签名的版本以日志登记的哈希值核对。"),
        "report": "报告文件可以读取和检查。",
        "report manifest": "报告中内嵌的证据清单与证据包一致。",
        "report seal": "报告上的电子印章完整、可信，并带有时间戳。",
    },
}
# every check of a bundle has its words (the others are a copy page's: `verifier page`, not in a report)
assert set(PASSED["zh-CN"]) == set(CHECKS["zh-CN"]) - {"events", "all events", "status", "parties", "timeline",
                                                        "times", "this copy", "page"}

STATUS: dict[str, dict[str, str]] = {
    "en": {
        "draft": "DRAFT - not sent for signing yet",
        "sent": "IN PROGRESS - not signed by every party yet",
        "completed": "COMPLETED - signed by every party",
        "withdrawn": "WITHDRAWN - withdrawn before completion",
        "declined": "DECLINED - a party declined to sign",
        "voided": "VOID - voided after completion, with the consent of every signing party",
    },
    "zh-CN": {
        "draft": "草稿 - 尚未发起签署",
        "sent": "签署中 - 尚有签署方未签署",
        "completed": "已完成 - 各方均已签署",
        "withdrawn": "已撤回 - 在签署完成前被撤回",
        "declined": "已拒签 - 有签署方拒绝签署",
        "voided": "已作废 - 签署完成后经全部签署方同意作废",
    },
}

# How the system keeps evidence: (heading, paragraph) pairs, after an introduction. Every sentence must
# stay true of this system (DESIGN.md §3): change it when the system changes.
KEEPING: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "en": (
        "Courts weigh electronic data by how it was generated, stored, checked for integrity and extracted "
        "(for example Article 93 of the Supreme People's Court's Provisions on Evidence in Civil Procedure). "
        "This section says how this system does each.",
        [
            ("Generation",
             "Each step of the signing (creation, documents and parties added, sending, viewing, identity "
             "verification, signature, completion, withdrawal or voiding, printing and scanning of paper copies) is "
             "recorded by the ledger when it happens, as one entry of its log: canonical JSON (RFC 8785) holding "
             "the contract's identifier, a sequence number, the time by the ledger's clock and the hash of the "
             "contract's previous entry, so that the contract's entries also form a hash chain. A step the "
             "lifecycle does not allow (signing out of order, withdrawing after completion) is refused and is "
             "not recorded."),
            ("Storage",
             "The log is append-only: an entry is given its index, folded into a Merkle tree (RFC 6962 / RFC 9162) "
             "and never changed or deleted; a correction or a cancellation is a new entry. Entries hold no personal "
             "data and no confidential text: names, titles and contact details appear only as salted SHA-256 "
             "commitments, documents only as their SHA-256. The log itself can therefore be public, and it is "
             "stored and replicated as C2SP tiles. The openings of the commitments and the documents are kept "
             "privately by the platform and travel in this evidence bundle."),
            ("Integrity checks",
             "The ledger signs checkpoints (the tree's size and root hash; Ed25519, C2SP signed note) with its log "
             "key. Changing, removing or reordering any entry changes every later root hash, so an inclusion proof "
             "against a signed checkpoint shows that an entry is in the log unchanged. Time-stamp authorities "
             "(TSAs) time-stamp checkpoints under RFC 3161: the entries a checkpoint covers existed no later than "
             "the time-stamp's genTime, whatever the ledger's clock said. Witnesses keep the checkpoints they have "
             "seen and cosign a new one only when it extends them, so the log cannot rewrite its history, or show "
             "different histories to different readers, without it showing. The TSAs and witnesses are named under "
             "<b>Cryptographic evidence</b>; their independence from the platform is what gives their signatures "
             "weight."),
            ("Extraction",
             "This bundle was extracted from the log and the platform's private records. Its manifest.json, "
             "attached to this PDF, lists every file of the bundle with its SHA-256. Anyone can check all of it "
             "again, offline and without trusting the platform, with the open-source verifier or with OpenSSL; the "
             "same files give the same result. This report presents the bundle's files: where the two differ, "
             "the files prevail."),
        ],
    ),
    "zh-CN": (
        "人民法院审查判断电子数据的真实性时，会考虑其生成、存储、完整性校验和提取的方式（参见《最高人民法院关于民事"
        "诉讼证据的若干规定》第九十三条）。本节逐项说明本系统的做法。",
        [
            ("生成",
             "签署过程的每一步（创建合同、添加文件和参与方、发起签署、查看、身份认证、签署、完成、撤回或作废、纸质件"
             "的打印和扫描）在发生时即由本系统记录为日志中的一条记录：RFC 8785 规范化 JSON，包含合同标识、序号、"
             "本系统时钟记录的时间以及该合同上一条记录的哈希值，因此同一合同的记录还构成一条哈希链。签署流程不允许的"
             "操作（如不按签署顺序签署、完成后撤回）会被拒绝，不予记录。"),
            ("存储",
             "日志只增不改：每条记录获得其序号后并入默克尔树（RFC 6962 / RFC 9162），此后不再修改或删除；更正或撤销"
             "也以新记录的形式追加。记录中不含个人信息和保密内容：姓名、合同名称和联系方式只以加盐 SHA-256 承诺值"
             "出现，文件只以其 SHA-256 出现。因此日志本身可以公开，并以 C2SP 瓦片（tiles）形式存储和复制。承诺的"
             "原文及合同文件由平台私下保存，并随本证据包一并导出。"),
            ("完整性校验",
             "本系统用日志密钥对检查点（树大小和根哈希；Ed25519，C2SP 签名笔记格式）签名。修改、删除或调换任何一条"
             "记录，都会改变其后的所有根哈希，因此对照已签名检查点的包含证明可以表明某条记录原样保存在日志中。"
             "时间戳机构（TSA）按 RFC 3161 对检查点加盖可信时间戳：检查点涵盖的记录不晚于时间戳的 genTime 即已存在，"
             "与本系统时钟无关。见证方保存其见过的检查点，只在新检查点是其延续时才联署，因此日志无法在不被发现的情况下"
             "改写历史，或向不同读者展示不同的历史。时间戳机构和见证方列于“密码学证据”一节；它们独立于平台，"
             "其签名才有分量。"),
            ("提取",
             "本证据包从日志和平台的私有记录中提取。附于本 PDF 的 manifest.json 列出证据包中每个文件及其 SHA-256。"
             "任何人都可以使用开源验证工具或 OpenSSL，在离线且无需信任平台的情况下重新核验全部内容；相同的文件得出"
             "相同的结果。本报告是对证据包文件的呈现：两者不一致时，以证据包文件为准。"),
        ],
    ),
}

# How to verify: an introduction, then (paragraph, command lines) steps. The commands are literal text.
VERIFYING: dict[str, list[tuple[str, list[str]]]] = {
    "en": [
        ("<b>1. With the verifier (recommended).</b> It checks the whole bundle offline and prints one line per "
         "check and a verdict. <b>VERIFY.md</b> in the bundle gives every step, with the exact commands.",
         ["verifier verify bundle.zip"]),
        ("<b>2. Check the log key.</b> Compare the log verifier key under <b>Cryptographic evidence</b> with the "
         "one the platform publishes and the one pinned in the QR code of a printed copy, not only with the copy "
         "in the bundle; likewise obtain the TSAs' root certificates from the TSAs themselves.", []),
        ("<b>3. With OpenSSL alone.</b> A file's SHA-256 must equal the one in manifest.json and in "
         "<b>Documents</b>:",
         ["openssl dgst -sha256 documents/FILE"]),
        ("An entry's leaf hash is SHA-256 of a zero byte followed by the entry's exact bytes; it must equal its "
         "leaf hash in Appendix A:",
         ["(printf '\\000'; cat entries/FILE) | openssl dgst -sha256"]),
        ("A time-stamp covers the checkpoint's body, its first three lines (origin, size, root). OpenSSL must say "
         "\"Verification: OK\"; the second command shows the genTime, serial and policy:",
         ["head -n 3 checkpoints/FILE > body.txt",
          "openssl ts -verify -data body.txt -in anchors/FILE.tsr -CAfile TSA-ROOT.pem",
          "openssl ts -reply -in anchors/FILE.tsr -text"]),
        ("The inclusion proofs (RFC 9162 §2.1.3) are Merkle arithmetic, not practical by hand: the verifier "
         "checks them, and any RFC 9162 implementation gives the same root. The signatures in the signed PDFs "
         "can also be checked with a PDF reader that validates signatures, or with poppler's pdfsig.", []),
    ],
    "zh-CN": [
        ("<b>1. 使用验证工具（推荐）。</b>它离线核验整个证据包，每项检查输出一行并给出结论。证据包中的 "
         "<b>VERIFY.md</b> 列出了每一步及其确切命令。",
         ["verifier verify bundle.zip"]),
        ("<b>2. 核对日志公钥。</b>请将“密码学证据”中的日志验证公钥与平台公布的公钥、纸质打印件二维码中固定的公钥"
         "进行比对，而不仅仅与证据包中的副本比对；时间戳机构的根证书也应从该机构处独立获取。", []),
        ("<b>3. 仅使用 OpenSSL。</b>文件的 SHA-256 应与 manifest.json 及“合同文件”一节中的值一致：",
         ["openssl dgst -sha256 documents/FILE"]),
        ("记录的叶哈希是一个零字节加上该记录原始字节的 SHA-256，应与附录 A 中的叶哈希一致：",
         ["(printf '\\000'; cat entries/FILE) | openssl dgst -sha256"]),
        ("时间戳所覆盖的是检查点的正文，即其前三行（日志标识、大小、根哈希）。OpenSSL 应输出"
         "“Verification: OK”；第二条命令显示 genTime、序列号和策略：",
         ["head -n 3 checkpoints/FILE > body.txt",
          "openssl ts -verify -data body.txt -in anchors/FILE.tsr -CAfile TSA-ROOT.pem",
          "openssl ts -reply -in anchors/FILE.tsr -text"]),
        ("包含证明（RFC 9162 §2.1.3）是默克尔树运算，不宜手工核验：由验证工具核验，任何 RFC 9162 实现都会得出相同的"
         "根哈希。已签署 PDF 中的签名也可以用能验证签名的 PDF 阅读器或 poppler 的 pdfsig 核验。", []),
    ],
}
