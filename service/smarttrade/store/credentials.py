"""Exchange credentials at rest: AES-256-GCM envelope encryption.

Each record gets its own random data key; the data key is wrapped by a master key from
configuration, named by a key id so master keys can rotate (old ids stay readable). The
account id is the associated data of both layers, so a ciphertext copied onto another
account's row fails to decrypt. Plaintext never leaves `seal`/`unseal`: no repr, no logs.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from smarttrade.domain.account import Credentials
from smarttrade.errors import PreconditionFailed

FORMAT = 1


class CredentialsError(PreconditionFailed):
    """The credentials cannot be decrypted (wrong account, unknown or wrong master key).
    Callers see one message whatever the cause; `detail` says which, for the log."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            "CREDENTIALS_UNREADABLE",
            "the account's credentials cannot be decrypted with the configured master keys",
        )
        self.detail = detail


@dataclass(frozen=True)
class MasterKeys:
    """The master keys by id; new records are sealed with `current`."""

    keys: dict[str, bytes] = field(repr=False)
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError("the current master key id has no key")
        if any(len(key) != 32 for key in self.keys.values()):
            raise ValueError("master keys must be 32 bytes (AES-256)")


def _associated(account_id: str) -> bytes:
    return f"smarttrade/exchange-account/{account_id}".encode()


def seal(credentials: Credentials, account_id: str, keys: MasterKeys) -> bytes:
    data_key = AESGCM.generate_key(bit_length=256)
    aad = _associated(account_id)
    plaintext = json.dumps(
        {
            "api_key": credentials.api_key,
            "secret": credentials.secret,
            "password": credentials.password,
        }
    ).encode()
    wrap_nonce, nonce = os.urandom(12), os.urandom(12)
    wrapped = AESGCM(keys.keys[keys.current]).encrypt(wrap_nonce, data_key, aad)
    body = AESGCM(data_key).encrypt(nonce, plaintext, aad)
    key_id = keys.current.encode()
    return (
        struct.pack("!BB", FORMAT, len(key_id))
        + key_id
        + wrap_nonce
        + struct.pack("!H", len(wrapped))
        + wrapped
        + nonce
        + body
    )


def unseal(blob: bytes, account_id: str, keys: MasterKeys) -> Credentials:
    try:
        version, id_length = struct.unpack_from("!BB", blob, 0)
        if version != FORMAT:
            raise CredentialsError("unknown credentials format")
        offset = 2
        key_id = blob[offset : offset + id_length].decode()
        offset += id_length
        wrap_nonce = blob[offset : offset + 12]
        offset += 12
        (wrapped_length,) = struct.unpack_from("!H", blob, offset)
        offset += 2
        wrapped = blob[offset : offset + wrapped_length]
        offset += wrapped_length
        nonce, body = blob[offset : offset + 12], blob[offset + 12 :]
        master = keys.keys.get(key_id)
        if master is None:
            raise CredentialsError(f"unknown master key id {key_id!r}")
        aad = _associated(account_id)
        data_key = AESGCM(master).decrypt(wrap_nonce, wrapped, aad)
        values = json.loads(AESGCM(data_key).decrypt(nonce, body, aad))
    except (InvalidTag, struct.error, UnicodeDecodeError, ValueError) as error:
        raise CredentialsError("the credentials cannot be decrypted for this account") from error
    return Credentials(values["api_key"], values["secret"], values.get("password", ""))
