"""PII: e-mail addresses and public IP addresses replaced with placeholders, as FineWeb does it.

Same patterns and placeholders as datatrove's `PIIFormatter` (FineWeb's PII step): e-mails become
`email@example.com` / `firstname.lastname@example.org`, public IPv4 addresses (`ipaddress.ip_address(ip)
.is_global`) one of six addresses that did not answer pings when datatrove made its list; private, loopback and
reserved addresses stay. datatrove cycles the placeholders through one counter shared by every document a
worker sees, so its output depends on the order of documents; here the cycle restarts in every document, so
a document's output depends on that document alone. Nothing is dropped; `pii.emails` and `pii.ips` count the
replacements per document. Documents without "@" or a dotted-quad are skipped by one Arrow regex pass.
"""

from __future__ import annotations

import ipaddress
import re
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.filters.base import FilterStage
from tokenmill.stage import StageConfig

EMAIL_REGEX = (  # datatrove pii.py (RFC 5322-ish)
    r"\b[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:(?:[A-Za-z0-9](?:["
    r"A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?|\[(?:(?:25[0-5]|2[0-4][0-9]|["
    r"01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|[A-Za-z0-9-]*[A-Za-z0-9]:)])"
)
IP_REGEX = r"(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
EMAIL_PLACEHOLDERS = ("email@example.com", "firstname.lastname@example.org")  # datatrove / FineWeb
IP_PLACEHOLDERS = ("22.214.171.124", "126.96.36.199", "188.8.131.52", "184.108.40.206", "220.127.116.11",
                   "18.104.22.168")  # datatrove: random addresses that did not respond to ping


class PIIConfig(StageConfig):
    remove_emails: bool = True
    remove_ips: bool = True
    only_remove_public_ips: bool = True  # private/loopback addresses are not personal data
    email_replacement: list[str] = list(EMAIL_PLACEHOLDERS)
    ip_replacement: list[str] = list(IP_PLACEHOLDERS)


class PIIFilter(FilterStage):
    name = "pii"
    Config = PIIConfig
    score_columns: ClassVar[tuple[str, ...]] = ()
    signal_types: ClassVar[dict[str, pa.DataType]] = {"pii.emails": pa.int32(), "pii.ips": pa.int32()}

    def __init__(self, config=None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self._email = re.compile(EMAIL_REGEX)
        self._ip = re.compile(IP_REGEX)

    def filter_batch(self, texts: list[str]):
        cfg = self.config
        arr = pa.array(texts, pa.large_string())
        emails, ips = np.zeros(len(texts), np.int32), np.zeros(len(texts), np.int32)
        out = list(texts)
        may_email = pc.match_substring(arr, "@").to_numpy(zero_copy_only=False) if cfg.remove_emails else None
        may_ip = (pc.match_substring_regex(arr, r"\d\.\d+\.\d+\.\d").to_numpy(zero_copy_only=False)
                  if cfg.remove_ips else None)
        for i in range(len(texts)):
            if may_email is not None and may_email[i]:
                out[i], emails[i] = _replace(self._email, out[i], cfg.email_replacement, None)
            if may_ip is not None and may_ip[i]:
                out[i], ips[i] = _replace(self._ip, out[i], cfg.ip_replacement, self._valid_ip)
        return {"text": out, "pii.emails": emails, "pii.ips": ips}, [None] * len(texts)

    def _valid_ip(self, ip: str) -> bool:
        try:
            return not self.config.only_remove_public_ips or ipaddress.ip_address(ip).is_global
        except ValueError:
            return False


def _replace(pattern: re.Pattern, text: str, placeholders: list[str], valid) -> tuple[str, int]:
    """Replace every (valid) match, cycling through `placeholders` from the first; return the count."""
    count = 0

    def sub(m: re.Match) -> str:
        nonlocal count
        if valid is not None and not valid(m.group(0)):
            return m.group(0)
        count += 1
        return placeholders[(count - 1) % len(placeholders)]

    return pattern.sub(sub, text), count
