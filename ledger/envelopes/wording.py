"""The words a reader sees for the values of the log: its event types, and the methods, channels and
kinds of an event, in each language the portal and the evidence report speak (the log keeps its own
values; pages and reports show these). It imports nothing."""

from __future__ import annotations

EVENTS: dict[str, dict[str, str]] = {
    "en": {
        "envelope.created": "Contract created", "document.added": "Document added", "party.added": "Party added",
        "envelope.sent": "Sent for signing", "party.viewed": "Viewed", "party.authenticated": "Identity verified",
        "party.signed": "Signed", "party.declined": "Declined to sign", "envelope.completed": "Signing completed",
        "envelope.withdrawn": "Withdrawn", "void.requested": "Voiding requested",
        "void.consented": "Consented to voiding", "envelope.voided": "Voided", "copy.printed": "Copy printed",
        "paper.scanned": "Paper copy scanned", "seal.used": "Seal applied", "evidence.exported": "Evidence exported",
        "document.sealed": "Sealed by the platform (e-seal)",
    },
    "zh-CN": {
        "envelope.created": "创建合同", "document.added": "添加文件", "party.added": "添加参与方",
        "envelope.sent": "发起签署", "party.viewed": "查看", "party.authenticated": "身份认证",
        "party.signed": "签署", "party.declined": "拒签", "envelope.completed": "签署完成",
        "envelope.withdrawn": "撤回", "void.requested": "申请作废", "void.consented": "同意作废",
        "envelope.voided": "作废", "copy.printed": "打印", "paper.scanned": "扫描纸质件", "seal.used": "用印",
        "evidence.exported": "导出证据",
        "document.sealed": "平台加盖电子印章",
    },
}
DETAILS: dict[str, dict[str, str]] = {
    "en": {
        "face": "face recognition", "sms": "SMS code", "qr-scan": "QR code scan", "ukey": "USB key",
        "password": "signing password", "fingerprint": "fingerprint", "dynamic-token": "dynamic token",
        "email": "email", "passport-manual": "passport, checked by staff", "bank-card": "bank card",
        "video": "video call", "web": "website", "h5": "mobile web (H5)", "mini-program": "mini program",
        "app": "app", "paper": "paper", "person": "person", "organization": "organization",
        "electronic": "electronic seal", "physical": "physical seal",
    },
    "zh-CN": {
        "face": "刷脸认证", "sms": "短信验证码", "qr-scan": "扫码认证", "ukey": "U盾", "password": "签署密码",
        "fingerprint": "指纹识别", "dynamic-token": "动态令牌", "email": "电子邮件", "passport-manual": "护照人工审核",
        "bank-card": "银行卡认证", "video": "视频认证", "web": "网页", "h5": "H5 移动网页", "mini-program": "小程序",
        "app": "App", "paper": "纸质", "person": "个人", "organization": "机构", "electronic": "电子印章",
        "physical": "实体印章",
    },
}
