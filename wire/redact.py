"""Secret redaction applied to every observation before it reaches a trace, a log, the store or a metric.

Owns the placeholders and the Redactor. Stdlib only, pure.

Two layers, both needed:
1. *By value*: every configured secret (gateway token/password, hook token, ...) is replaced wherever it
   appears in text, by a stable placeholder such as ``<GW_TOKEN>`` so traces stay comparable.
2. *By position*: fields that carry secrets we do not know in advance -- ``Authorization`` and
   ``X-OpenClaw-Token`` headers, ``device.signature``, ``deviceToken`` (reference section 8, "Secrets").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from wire.model import Observation

__all__ = ["SECRET_HEADERS", "SECRET_KEYS", "Redactor"]

#: Header names whose values are always masked (case-insensitive).
SECRET_HEADERS = frozenset({"authorization", "x-openclaw-token", "proxy-authorization", "cookie", "set-cookie"})
#: JSON object keys whose string values are always masked wherever they appear.
SECRET_KEYS = frozenset(
    {
        "token",
        "password",
        "signature",
        "deviceToken",
        "bootstrapToken",
        "approvalRuntimeToken",
        "agentRuntimeIdentityToken",
        "apiKey",
    }
)
_MASK = "<REDACTED>"


@dataclass(frozen=True, slots=True)
class Redactor:
    """Masks secrets in observations, text and JSON values.

    Args:
        secrets: mapping of placeholder name (``GW_TOKEN``) to the secret value. Empty values are ignored.
    """

    secrets: Mapping[str, str] = field(default_factory=dict)

    def _pairs(self) -> list[tuple[str, str]]:
        # Longest first, so a secret that contains another is replaced whole.
        items = [(v, f"<{k}>") for k, v in self.secrets.items() if v]
        return sorted(items, key=lambda p: -len(p[0]))

    def text(self, s: str) -> str:
        """Replace every known secret value inside ``s``."""
        for value, placeholder in self._pairs():
            if value in s:
                s = s.replace(value, placeholder)
        return s

    def value(self, v: Any) -> Any:
        """Redact a decoded JSON value: known secrets by value, secret keys by position."""
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if k in SECRET_KEYS and isinstance(x, str) and x and not x.startswith("<"):
                    out[k] = self._placeholder_for(x)
                else:
                    out[k] = self.value(x)
            return out
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, str):
            return self.text(v)
        return v

    def _placeholder_for(self, secret: str) -> str:
        for value, placeholder in self._pairs():
            if value == secret:
                return placeholder
        return _MASK

    def payload(self, s: str) -> str:
        """Redact a text payload; JSON text keeps its exact layout unless a secret key had to be masked."""
        s = self.text(s)
        stripped = s.lstrip()
        if not stripped.startswith(("{", "[")) or not any(f'"{k}"' in s for k in SECRET_KEYS):
            return s
        try:
            decoded = json.loads(s)
        except ValueError:
            return _mask_keys_regex(s)
        redacted = self.value(decoded)
        if redacted == decoded:
            return s
        return json.dumps(redacted, ensure_ascii=False, separators=(",", ":"))

    def headers(self, headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        out = []
        for k, v in headers:
            if k.lower() in SECRET_HEADERS:
                scheme, _, rest = v.partition(" ")
                masked = self.text(v)
                if masked == v:  # unknown secret: keep the scheme, mask the credential
                    masked = f"{scheme} {_MASK}" if rest else _MASK
                out.append((k, masked))
            else:
                out.append((k, self.text(v)))
        return tuple(out)

    def observation(self, obs: Observation) -> Observation:
        """A copy of ``obs`` with every secret masked (payload, path/query, headers, close reason)."""
        return replace(
            obs,
            data=self.payload(obs.data) if obs.data is not None else None,
            data_b64=self.text(obs.data_b64.decode("latin-1")).encode("latin-1") if obs.data_b64 else obs.data_b64,
            path=self.text(obs.path) if obs.path else obs.path,
            headers=self.headers(obs.headers),
            reason=self.text(obs.reason) if obs.reason else obs.reason,
        )


_KEY_RE = re.compile(r'("(?:' + "|".join(sorted(SECRET_KEYS)) + r')"\s*:\s*)"[^"\\]*(?:\\.[^"\\]*)*"')


def _mask_keys_regex(s: str) -> str:
    """Fallback for text that looks like JSON but does not parse (e.g. a malformed frame)."""
    return _KEY_RE.sub(lambda m: m.group(1) + f'"{_MASK}"', s)
