"""The synthetic multi-domain benchmark: ``synthetic_a`` .. ``synthetic_d`` (generator version 3)
and the controlled domain-shift sets ``synthetic_p1s1`` ... (version 5, see
:mod:`omnireid.data.synthetic_domains`).

Generated on first use (seconds to tens of seconds; see :mod:`omnireid.data.synthetic`) and read
with the Market-1501 reader. Default statistics per domain (seed 0): 500 identities (250 train,
250 test) over 6 cameras, 2-4 cameras and 1-4 images per camera for each person (about 1900 training
images, 700 queries and 1300 gallery images incl. 100 distractors with id 0; 20 junk crops with id
-1 are left out like Market-1501's), 128x64 JPEGs.

Domains: ``a`` street daylight, ``b`` dim indoor CCTV, ``c`` warm shopping mall, ``d`` washed-out
winter. The domain-shift sets have the same counts at 64x32; ``pXsY`` is population ``X`` seen in
camera style ``Y``.

On-disk layout (under the cache folder, default ``~/.cache/omnireid/synthetic`` or
``$OMNIREID_CACHE/synthetic``; ``root=`` overrides it)::

    CACHE/synthetic_a/
        synthetic.json                       (how it was made: spec, version, counts)
        market1501/Market-1501-v15.09.15/
            bounding_box_train/0001_c1s1_000000_00.jpg ...
            query/ ...  bounding_box_test/ ...
"""

from __future__ import annotations

from pathlib import Path

from omnireid.data.datasets.market1501 import read_market1501
from omnireid.data.datasets.registry import DATASETS
from omnireid.data.records import ReIDDataset
from omnireid.data.synthetic import DOMAIN_STYLES, SyntheticSpec, generate_domain
from omnireid.data.synthetic_domains import SHIFT_DOMAINS


def read_synthetic(
    domain: str, root: str | Path | None = None, *, progress: bool = False, **spec_options
) -> ReIDDataset:
    """Generate (once) and read one synthetic domain.

    Args:
        domain: ``"a"`` .. ``"d"``, ``"p1s1"``, ...
        root: cache folder (default: :func:`omnireid.data.synthetic.default_cache_dir`).
        progress: show a progress bar while generating.
        **spec_options: fields of :class:`SyntheticSpec` (``seed``, ``num_ids``, ``num_cameras``,
            ``height``, ``width``, ...).
    """
    spec = SyntheticSpec.registered(domain, **spec_options)
    data_root = generate_domain(spec, root, progress=progress)
    ds = read_market1501(data_root)
    ds.name = f"synthetic_{domain}"
    ds.extra.update(spec=spec, synthetic_root=str(data_root))
    return ds


def _register(domain: str) -> None:
    def reader(root: str | Path | None = None, **options) -> ReIDDataset:
        return read_synthetic(domain, root, **options)

    described = DOMAIN_STYLES[domain] if domain in DOMAIN_STYLES else SHIFT_DOMAINS[domain]
    reader.__doc__ = f"Synthetic domain {domain!r}: {described.description}."
    reader.__name__ = f"read_synthetic_{domain}"
    DATASETS.add(f"synthetic_{domain}", reader)


_DOMAINS = (*sorted(DOMAIN_STYLES), *SHIFT_DOMAINS)
for _domain in _DOMAINS:
    _register(_domain)

SYNTHETIC_DATASETS: frozenset[str] = frozenset(f"synthetic_{d}" for d in _DOMAINS)
"""The registered synthetic datasets: generated on first use, so they need no data root, and
they take :class:`~omnireid.data.synthetic.SyntheticSpec` options (a recipe's
``data.synthetic``)."""


def is_synthetic(name: str) -> bool:
    """Whether ``name`` is a registered synthetic dataset."""
    return name in SYNTHETIC_DATASETS
