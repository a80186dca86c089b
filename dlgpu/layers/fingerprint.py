"""TensorFlow's string hashes, written out so that dlgpu's hashing layers put values in Keras's bins.

Keras's Hashing, IndexLookup (OOV buckets) and HashedCrossing call TensorFlow ops; TensorFlow hashes with
- ``Fingerprint64``: FarmHash's ``farmhashna::Hash64`` (tf.strings.to_hash_bucket_fast, tf.fingerprint);
- ``StrongKeyedHash``: SipHash-2-4 with a 128-bit key given as two uint64 (tf.strings.to_hash_bucket_strong,
  which Keras's Hashing uses when given a ``salt``);
- ``FingerprintCat64``: the combiner of tf.sparse.cross_hashed (HashedCrossing).
The first two run once per distinct value (callers np.unique first), so plain Python is fast enough;
the combiner runs per sample and is vectorised over numpy uint64 arrays, whose products wrap mod 2**64
exactly as C++'s uint64 arithmetic does.
"""

from __future__ import annotations

import numpy as np

_MASK = (1 << 64) - 1
# Primes between 2**63 and 2**64 (farmhash.cc).
_K0 = 0xC3A5C85C97CB3127
_K1 = 0xB492B66FBE98F273
_K2 = 0x9AE16A3B2F90404F


def _fetch64(s, i):
    return int.from_bytes(s[i:i + 8], "little")


def _fetch32(s, i):
    return int.from_bytes(s[i:i + 4], "little")


def _rotate(v, shift):
    return v if shift == 0 else ((v >> shift) | (v << (64 - shift))) & _MASK


def _shift_mix(v):
    return v ^ (v >> 47)


def _hash_len16(u, v, mul):
    a = ((u ^ v) * mul) & _MASK
    a ^= a >> 47
    b = ((v ^ a) * mul) & _MASK
    b ^= b >> 47
    return (b * mul) & _MASK


def _hash_len0to16(s, n):
    if n >= 8:
        mul = _K2 + n * 2
        a = (_fetch64(s, 0) + _K2) & _MASK
        b = _fetch64(s, n - 8)
        c = (_rotate(b, 37) * mul + a) & _MASK
        d = ((_rotate(a, 25) + b) * mul) & _MASK
        return _hash_len16(c, d, mul)
    if n >= 4:
        mul = _K2 + n * 2
        a = _fetch32(s, 0)
        return _hash_len16((n + (a << 3)) & _MASK, _fetch32(s, n - 4), mul)
    if n > 0:
        y = s[0] + (s[n >> 1] << 8)
        z = n + (s[n - 1] << 2)
        return (_shift_mix(((y * _K2) ^ (z * _K0)) & _MASK) * _K2) & _MASK
    return _K2


def _hash_len17to32(s, n):
    mul = _K2 + n * 2
    a = (_fetch64(s, 0) * _K1) & _MASK
    b = _fetch64(s, 8)
    c = (_fetch64(s, n - 8) * mul) & _MASK
    d = (_fetch64(s, n - 16) * _K2) & _MASK
    return _hash_len16((_rotate((a + b) & _MASK, 43) + _rotate(c, 30) + d) & _MASK,
                       (a + _rotate((b + _K2) & _MASK, 18) + c) & _MASK, mul)


def _hash_len33to64(s, n):
    mul = _K2 + n * 2
    a = (_fetch64(s, 0) * _K2) & _MASK
    b = _fetch64(s, 8)
    c = (_fetch64(s, n - 8) * mul) & _MASK
    d = (_fetch64(s, n - 16) * _K2) & _MASK
    y = (_rotate((a + b) & _MASK, 43) + _rotate(c, 30) + d) & _MASK
    z = _hash_len16(y, (a + _rotate((b + _K2) & _MASK, 18) + c) & _MASK, mul)
    e = (_fetch64(s, 16) * mul) & _MASK
    f = _fetch64(s, 24)
    g = ((y + _fetch64(s, n - 32)) * mul) & _MASK
    h = ((z + _fetch64(s, n - 24)) * mul) & _MASK
    return _hash_len16((_rotate((e + f) & _MASK, 43) + _rotate(g, 30) + h) & _MASK,
                       (e + _rotate((f + a) & _MASK, 18) + g) & _MASK, mul)


def _weak_hash_len32_with_seeds(s, i, a, b):
    w, x, y, z = _fetch64(s, i), _fetch64(s, i + 8), _fetch64(s, i + 16), _fetch64(s, i + 24)
    a = (a + w) & _MASK
    b = _rotate((b + a + z) & _MASK, 21)
    c = a
    a = (a + x + y) & _MASK
    b = (b + _rotate(a, 44)) & _MASK
    return (a + z) & _MASK, (b + c) & _MASK


def fingerprint64(data):
    """FarmHash Fingerprint64 (farmhashna::Hash64) of ``data`` (bytes, or a str taken as UTF-8), as TensorFlow's
    Fingerprint64: an int in [0, 2**64)."""
    s = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    n = len(s)
    if n <= 16:
        return _hash_len0to16(s, n)
    if n <= 32:
        return _hash_len17to32(s, n)
    if n <= 64:
        return _hash_len33to64(s, n)
    seed = 81
    x = seed
    y = (seed * _K1 + 113) & _MASK
    z = (_shift_mix((y * _K2 + 113) & _MASK) * _K2) & _MASK
    v = (0, 0)
    w = (0, 0)
    x = (x * _K2 + _fetch64(s, 0)) & _MASK
    end = ((n - 1) // 64) * 64
    last64 = end + ((n - 1) & 63) - 63
    i = 0
    while True:
        x = (_rotate((x + y + v[0] + _fetch64(s, i + 8)) & _MASK, 37) * _K1) & _MASK
        y = (_rotate((y + v[1] + _fetch64(s, i + 48)) & _MASK, 42) * _K1) & _MASK
        x ^= w[1]
        y = (y + v[0] + _fetch64(s, i + 40)) & _MASK
        z = (_rotate((z + w[0]) & _MASK, 33) * _K1) & _MASK
        v = _weak_hash_len32_with_seeds(s, i, (v[1] * _K1) & _MASK, (x + w[0]) & _MASK)
        w = _weak_hash_len32_with_seeds(s, i + 32, (z + w[1]) & _MASK, (y + _fetch64(s, i + 16)) & _MASK)
        z, x = x, z
        i += 64
        if i == end:
            break
    mul = _K1 + ((z & 0xFF) << 1)
    i = last64
    w0 = (w[0] + ((n - 1) & 63)) & _MASK
    v0 = (v[0] + w0) & _MASK
    w0 = (w0 + v0) & _MASK
    v, w = (v0, v[1]), (w0, w[1])
    x = (_rotate((x + y + v[0] + _fetch64(s, i + 8)) & _MASK, 37) * mul) & _MASK
    y = (_rotate((y + v[1] + _fetch64(s, i + 48)) & _MASK, 42) * mul) & _MASK
    x ^= (w[1] * 9) & _MASK
    y = (y + v[0] * 9 + _fetch64(s, i + 40)) & _MASK
    z = (_rotate((z + w[0]) & _MASK, 33) * mul) & _MASK
    v = _weak_hash_len32_with_seeds(s, i, (v[1] * mul) & _MASK, (x + w[0]) & _MASK)
    w = _weak_hash_len32_with_seeds(s, i + 32, (z + w[1]) & _MASK, (y + _fetch64(s, i + 16)) & _MASK)
    z, x = x, z
    return _hash_len16((_hash_len16(v[0], w[0], mul) + _shift_mix(y) * _K0 + z) & _MASK,
                       (_hash_len16(v[1], w[1], mul) + x) & _MASK, mul)


def _sip_round(v0, v1, v2, v3):
    v0 = (v0 + v1) & _MASK
    v1 = _rotate(v1, 64 - 13) ^ v0  # rotate left by 13
    v0 = _rotate(v0, 64 - 32)
    v2 = (v2 + v3) & _MASK
    v3 = _rotate(v3, 64 - 16) ^ v2
    v0 = (v0 + v3) & _MASK
    v3 = _rotate(v3, 64 - 21) ^ v0
    v2 = (v2 + v1) & _MASK
    v1 = _rotate(v1, 64 - 17) ^ v2
    v2 = _rotate(v2, 64 - 32)
    return v0, v1, v2, v3


def siphash64(key, data):
    """SipHash-2-4 of ``data`` (bytes, or a str taken as UTF-8) under ``key``, a pair of ints in [0, 2**64)
    (TensorFlow's StrongKeyedHash: highwayhash::SipHash with key[0], key[1])."""
    s = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    k0, k1 = int(key[0]) & _MASK, int(key[1]) & _MASK
    v0, v1 = k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D
    v2, v3 = k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573
    n = len(s)
    tail = s[n - n % 8:]
    for i in range(0, n - n % 8, 8):
        m = _fetch64(s, i)
        v3 ^= m
        for _ in range(2):
            v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
        v0 ^= m
    m = ((n & 0xFF) << 56) | int.from_bytes(tail, "little")
    v3 ^= m
    for _ in range(2):
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    v0 ^= m
    v2 ^= 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def hash_buckets(values, num_buckets, salt=None):
    """Bucket of each value, as Keras's Hashing puts it: the value's text (str of an integer, as tf.as_string)
    hashed with Fingerprint64 (to_hash_bucket_fast) or, given ``salt`` (a pair), SipHash keyed by it
    (to_hash_bucket_strong), modulo ``num_buckets``.  ``values`` is a list; returns int64 numpy."""
    out = np.empty(len(values), np.int64)
    for i, v in enumerate(values):
        text = str(v)
        h = fingerprint64(text) if salt is None else siphash64(salt, text)
        out[i] = h % num_buckets
    return out


_CAT_MUL = np.uint64(0xC6A4A7935BD1E995)
_U47 = np.uint64(47)
# tf.sparse.cross_hashed's hash_key when none is given (_DEFAULT_HASH_KEY in tensorflow/python/ops/sparse_ops.py)
DEFAULT_CROSS_HASH_KEY = 0xDECAFCAFFE


def fingerprint_cat64(fp1, fp2):
    """TensorFlow's FingerprintCat64 of two uint64 numpy arrays, elementwise (numpy's uint64 products wrap
    mod 2**64 like C++'s)."""
    def shift_mix(v):
        return v ^ (v >> _U47)
    with np.errstate(over="ignore"):
        result = fp1 ^ _CAT_MUL
        result ^= shift_mix(fp2 * _CAT_MUL) * _CAT_MUL
        result *= _CAT_MUL
        result = shift_mix(result) * _CAT_MUL
        return shift_mix(result)


def cross_hashed(columns, num_buckets, hash_key=DEFAULT_CROSS_HASH_KEY):
    """tf.sparse.cross_hashed of dense columns with one value per sample: each column is a uint64 numpy array
    of per-sample features (an integer's own bits, a string's Fingerprint64), combined in order with
    FingerprintCat64 from ``hash_key``; the result modulo ``num_buckets`` (modulo 2**63-1 when it is 0), int64."""
    h = np.full(columns[0].shape, hash_key, np.uint64)
    for column in columns:
        h = fingerprint_cat64(h, column)
    bound = np.uint64(num_buckets if num_buckets > 0 else (1 << 63) - 1)
    return (h % bound).astype(np.int64)
