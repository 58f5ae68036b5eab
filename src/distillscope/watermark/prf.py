"""The keyed pseudo-random function behind every watermark scheme.

Nothing here touches ``torch.Generator``: every value is a pure function of the secret key and
token ids, so the same key and context give bit-identical results on CPU and GPU, on any torch
version and in any batch position.

* ``context_seed(key, person, ids)``: BLAKE2b keyed with the 32-byte secret, over the context
  ids as 8-byte little-endian signed integers, 8-byte digest, ``person`` separating the uses.
* ``token_code(t)``: an unkeyed 64-bit code per token id, ``mix64((t + 1) * GOLDEN)``.
* ``mix64``: the SplitMix64 finaliser (Stafford variant 13) in wrapping 64-bit arithmetic.
  torch has no unsigned 64-bit type, so values live in ``int64``; multiplication and XOR wrap
  identically on every device, and right shifts are made logical by masking.
* ``bits53(z)``: the top 53 bits of a 64-bit value; ``u = bits53 / 2**53`` is uniform on the grid
  ``{0, 1/2**53, ..., 1 - 1/2**53}``.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

import torch

GOLDEN = 0x9E3779B97F4A7C15
MIX_C1 = 0xBF58476D1CE4E5B9
MIX_C2 = 0x94D049BB133111EB
MASK64 = (1 << 64) - 1
U_BITS = 53
U_SCALE = float(1 << U_BITS)
SIGN_BIT = -(1 << 63)  # int64 bit pattern 0x8000000000000000


def to_int64(x: int) -> int:
    """Reinterpret an unsigned 64-bit integer as the signed value torch stores."""
    x &= MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


def to_uint64(x: int) -> int:
    return x & MASK64


def context_seed(key: bytes, person: bytes, ids: Sequence[int]) -> int:
    """Keyed BLAKE2b of the context ids, as a signed int64 value (bit pattern of the digest)."""
    data = b"".join(int(i).to_bytes(8, "little", signed=True) for i in ids)
    digest = hashlib.blake2b(data, key=key, digest_size=8, person=person).digest()
    return int.from_bytes(digest, "little", signed=True)


def context_seeds(key: bytes, person: bytes, contexts: Iterable[Sequence[int]]) -> torch.Tensor:
    """``context_seed`` of each row, as an int64 tensor on the CPU."""
    return torch.tensor([context_seed(key, person, row) for row in contexts], dtype=torch.int64)


def _shift_xor_(z: torch.Tensor, tmp: torch.Tensor, shift: int) -> None:
    """``z ^= z >>> shift`` (logical shift) in place."""
    torch.bitwise_right_shift(z, shift, out=tmp)
    tmp.bitwise_and_((1 << (64 - shift)) - 1)
    z.bitwise_xor_(tmp)


def mix64_(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64 finaliser applied in place to an int64 tensor; returns ``z``."""
    tmp = torch.empty_like(z)
    _shift_xor_(z, tmp, 30)
    z.mul_(to_int64(MIX_C1))
    _shift_xor_(z, tmp, 27)
    z.mul_(to_int64(MIX_C2))
    _shift_xor_(z, tmp, 31)
    return z


def mix64(z: torch.Tensor) -> torch.Tensor:
    return mix64_(z.clone())


def token_codes(vocab_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``token_code(t)`` for ``t = 0 .. vocab_size-1`` as an int64 tensor."""
    t = torch.arange(1, vocab_size + 1, dtype=torch.int64, device=device)
    return mix64_(t.mul_(to_int64(GOLDEN)))


def token_code_of(token_ids: torch.Tensor) -> torch.Tensor:
    """``token_code`` of arbitrary (non-negative) token ids, any shape."""
    return mix64_((token_ids.to(torch.int64) + 1).mul_(to_int64(GOLDEN)))


def bits53_(z: torch.Tensor) -> torch.Tensor:
    """Top 53 bits of each 64-bit value (in place): an integer in ``[0, 2**53)``."""
    return z.bitwise_right_shift_(64 - U_BITS).bitwise_and_((1 << U_BITS) - 1)


def uniform_from_bits(bits: torch.Tensor) -> torch.Tensor:
    """``bits / 2**53`` as float64: exactly representable, in ``[0, 1)``."""
    return bits.to(torch.float64) / U_SCALE


def unsigned_min(values: torch.Tensor, dim: int) -> torch.Tensor:
    """Minimum of int64 bit patterns read as unsigned 64-bit integers."""
    return (values ^ SIGN_BIT).amin(dim=dim) ^ SIGN_BIT


def keyed_token_table(key: bytes, person: bytes, vocab_size: int) -> torch.Tensor:
    """``context_seed(key, person, [t])`` for every token id: the keyed per-token values."""
    return context_seeds(key, person, ([t] for t in range(vocab_size)))
