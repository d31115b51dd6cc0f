"""Sign CDS Hooks requests the way an EHR does, for the demo, the sandbox tooling and tests.

Authentication stays on when ``cart-cds demo`` or the sandbox scripts run: they create a key pair for the
run (``EhrSigner.generate``), write a trusted-clients file that trusts its public key
(``write_trusted_clients``), point the service at it (``CART_CDS_TRUSTED_CLIENTS_FILE``), and send
``Authorization: Bearer <jwt>`` with every call (``authorization_header``). The private key never
leaves the process.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, rsa

_CURVES = {"ES384": ec.SECP384R1, "ES256": ec.SECP256R1}


@dataclass(frozen=True)
class EhrSigner:
    iss: str
    kid: str
    alg: str
    private_key: Any

    @classmethod
    def generate(cls, iss: str = "https://ehr.cart-cds.invalid", alg: str = "ES384", kid: str | None = None) -> EhrSigner:
        """A fresh key pair (ES384 by default; ES256, RS384, RS256, PS384 also possible)."""
        if alg in _CURVES:
            key = ec.generate_private_key(_CURVES[alg]())
        elif alg in {"RS384", "RS256", "PS384"}:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(f"unsupported signing algorithm {alg}")
        return cls(iss=iss, kid=kid or secrets.token_hex(8), alg=alg, private_key=key)

    def public_jwk(self) -> dict:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        jwk = json.loads(algorithm.to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk

    def public_jwks(self) -> dict:
        return {"keys": [self.public_jwk()]}

    def trusted_client_entry(self, **options: Any) -> dict:
        """An entry for the trusted-clients file with this key inline; ``options`` adds ``tenant``,
        ``fhir_servers`` or ``audiences``."""
        return {"iss": self.iss, "jwks": self.public_jwks(), **options}

    def write_trusted_clients(self, path: str | Path, **options: Any) -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump({"clients": [self.trusted_client_entry(**options)]}), encoding="utf-8")
        return path

    def token(
        self,
        aud: str,
        *,
        lifetime_seconds: int = 300,
        now: float | None = None,
        jti: str | None = None,
        tenant: str | None = None,
        jku: str | None = None,
    ) -> str:
        """A client JWT for one call to ``aud`` (the exact URL invoked), valid ``lifetime_seconds``."""
        issued = int(now if now is not None else time.time())
        claims = {"iss": self.iss, "aud": aud, "iat": issued, "exp": issued + lifetime_seconds,
                  "jti": jti or secrets.token_hex(32)}
        if tenant is not None:
            claims["tenant"] = tenant
        headers = {"kid": self.kid, "typ": "JWT"}
        if jku is not None:
            headers["jku"] = jku
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers=headers)

    def authorization_header(self, aud: str, **token_options: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(aud, **token_options)}"}
