"""License identifiers: SPDX license expressions, validated with ``packaging``.

``packaging.licenses`` carries the SPDX license list (it implements PEP 639), so the
check is a well-kept library's, not a hand-copied list. ``LicenseRef-*`` identifiers
(SPDX's own escape for custom licenses) are accepted, as SPDX allows.
"""

from __future__ import annotations

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

from breedlab.errors import InvalidRequest

__all__ = ["check_license"]


def check_license(text: str) -> str:
    """Return the canonical SPDX expression for ``text`` (e.g. ``apache-2.0`` → ``Apache-2.0``).

    Raises:
        InvalidRequest: not an SPDX license identifier or expression.
    """
    try:
        return str(canonicalize_license_expression(text))
    except InvalidLicenseExpression as e:
        raise InvalidRequest(
            f"license {text!r} is not an SPDX identifier (e.g. Apache-2.0, MIT, BSD-3-Clause)"
        ) from e
