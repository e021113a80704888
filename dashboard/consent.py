"""The consent notice (Provisions on Children's Personal Information, Art. 9-10; PIPL
Art. 31): versioned, in zh-CN and en, shown before pairing completes; every answer is
recorded with the version it answered.

`NOTICES` lists every version, oldest first. A version marked `material` asks every
guardian again: until one of a device's guardians answers it, the device's optional
processing (usage reports uploaded to the server, push notifications) is off; the basic
functions (rules, requests and answers) keep working. A non-material version (a typo, a
new complaint address) is shown but does not ask again. Refusal is recorded like
acceptance and keeps optional processing off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from dashboard.db.schema import consents
from dashboard.errors import Problem

SECTIONS = (
    "purpose",
    "scope",
    "storage",
    "retention",
    "security",
    "refusal",
    "complaints",
    "correction_deletion",
)


@dataclass(frozen=True)
class NoticeVersion:
    version: str
    material: bool
    texts: dict[str, dict[str, Any]]


_EN = {
    "title": "How minormode handles your child's information",
    "sections": {
        "purpose": "To enforce the rules you set on your child's tablet (time, apps, web, spending), "
        "to deliver your child's requests to you and your answers to the tablet, and, if "
        "you agree below, to show you usage reports.",
        "scope": "On the tablet: app use and screen time, blocked sites and apps, purchases asked "
        "for, requests and reports your child sends. On this server: the same, but only as "
        "ciphertext sealed to the guardians' keys, plus the public keys, the delivery "
        "status of your rules and the audit log of who read what.",
        "storage": "The tablet keeps its journal encrypted. This server stores only ciphertext it "
        "cannot open, in the operator's data centre in mainland China.",
        "retention": "As long as your policy's retention period (30 days unless you change it); "
        "older data is deleted on the tablet and on the server. Unpairing deletes "
        "everything on the server at once.",
        "security": "End-to-end encryption (keys made in your browser and on the tablet, never on "
        "the server), signed rules, a tamper-evident journal, and an audit log of every "
        "read, export and deletion that you can see.",
        "refusal": "If you refuse, the tablet still enforces your rules and still carries requests "
        "and answers, but no usage reports are uploaded and no push notifications are "
        "sent. You can change your answer at any time.",
        "complaints": "Write to the operator's personal-information contact (see Settings > About), "
        "or complain to the Cyberspace Administration of China (12377.cn).",
        "correction_deletion": "Export, correct or delete your child's data from Data & privacy in "
        "this app; deletion on the server is immediate and the tablet "
        "confirms its own deletion with a signed receipt.",
    },
    "optional": {
        "usage_reports": "Upload sealed usage reports and the journal so that you can see charts.",
        "push_notifications": "Notify me (Web Push) when my child sends a request.",
    },
}

_ZH = {
    "title": "minormode 如何处理您孩子的个人信息",
    "sections": {
        "purpose": "在孩子的平板上执行您设定的规则(时间、应用、网页、消费),把孩子的请求送达您、"
        "把您的答复送达平板;如您在下方同意,还向您展示使用报告。",
        "scope": "平板上:应用使用和屏幕时间、被拦截的网站和应用、申请的购买、孩子发出的请求和举报。"
        "本服务器上:同样的内容,但仅为以监护人密钥加密的密文,另有公钥、规则的送达状态,"
        "以及谁读取了什么的审计记录。",
        "storage": "平板以加密方式保存日志。本服务器只保存它无法解开的密文,"
        "存放于运营者在中国大陆的数据中心。",
        "retention": "按您的策略中的保存期限(默认 30 天)保存;更早的数据在平板和服务器上删除。"
        "解除配对会立即删除服务器上的全部数据。",
        "security": "端到端加密(密钥在您的浏览器和平板上生成,从不在服务器上)、经签名的规则、"
        "防篡改日志,以及您可查看的每次读取、导出和删除的审计记录。",
        "refusal": "如您拒绝,平板仍执行您的规则,仍传递请求和答复,但不上传使用报告,也不发送推送通知。"
        "您可随时更改您的选择。",
        "complaints": "请联系运营者的个人信息保护负责人(见 设置 > 关于),或向国家互联网信息办公室"
        "(12377.cn)投诉。",
        "correction_deletion": "可在本应用的“数据与隐私”中导出、更正或删除孩子的数据;服务器上的删除立即生效,"
        "平板以签名回执确认其自身的删除。",
    },
    "optional": {
        "usage_reports": "上传加密的使用报告和日志,以便您查看图表。",
        "push_notifications": "孩子发出请求时通知我(Web Push)。",
    },
}

NOTICES: tuple[NoticeVersion, ...] = (NoticeVersion("2026-12", True, {"en": _EN, "zh-CN": _ZH}),)


def current() -> NoticeVersion:
    return NOTICES[-1]


def last_material() -> NoticeVersion:
    return next(n for n in reversed(NOTICES) if n.material)


def answers_current(version: str) -> bool:
    """An answer to this version still stands (no material change since)."""
    names = [n.version for n in NOTICES]
    if version not in names:
        return False
    return names.index(version) >= names.index(last_material().version)


def notice_view(language: str) -> dict[str, Any]:
    n = current()
    text = n.texts[language]
    return {
        "version": n.version,
        "language": language,
        "material": n.material,
        "title": text["title"],
        "sections": text["sections"],
        "optional": text["optional"],
    }


def check_answer(version: str, language: str) -> None:
    if version != current().version:
        raise Problem(
            409,
            "notice-changed",
            f"the notice is now version {current().version}; show it and ask again",
            field="body.version",
            extra={"current_version": current().version},
        )
    if language not in current().texts:
        raise Problem(422, "invalid", "no notice in that language", field="body.language")


def record(
    conn: Connection,
    *,
    family: str | None,
    device: str,
    account_id: int,
    kid: str,
    answer: Any,
    now: int,
    pairing: str | None = None,
) -> int:
    check_answer(answer.version, answer.language)
    accepted = bool(answer.accepted)
    result = conn.execute(
        consents.insert().values(
            family_id=family,
            device_id=device,
            account_id=account_id,
            kid=kid,
            version=answer.version,
            language=answer.language,
            accepted=accepted,
            usage_reports=accepted and bool(answer.usage_reports),
            push_notifications=accepted and bool(answer.push_notifications),
            at=now,
            pairing_id=pairing,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


@dataclass(frozen=True)
class Effective:
    version: str | None
    accepted: bool
    usage_reports: bool
    push_notifications: bool
    asked_again: bool  # a material change since the last answer: optional processing is off

    def view(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "current_version": current().version,
            "accepted": self.accepted,
            "usage_reports": self.usage_reports,
            "push_notifications": self.push_notifications,
            "asked_again": self.asked_again,
        }


def effective(conn: Connection, device_id: str) -> Effective:
    """The latest answer any guardian gave for this device, if it answers the notice in force."""
    row = conn.execute(
        select(consents).where(consents.c.device_id == device_id).order_by(consents.c.id.desc()).limit(1)
    ).first()
    if row is None:
        return Effective(None, False, False, False, True)
    if not answers_current(row.version):
        return Effective(row.version, False, False, False, True)
    return Effective(row.version, row.accepted, row.usage_reports, row.push_notifications, False)


def answered_by(conn: Connection, device_id: str, account_id: int) -> str | None:
    row = conn.execute(
        select(consents.c.version)
        .where(consents.c.device_id == device_id, consents.c.account_id == account_id)
        .order_by(consents.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else str(row.version)


def consent_view(row: Any) -> dict[str, Any]:
    return {
        "device": row.device_id,
        "kid": row.kid,
        "version": row.version,
        "language": row.language,
        "accepted": row.accepted,
        "usage_reports": row.usage_reports,
        "push_notifications": row.push_notifications,
        "at": row.at,
    }
