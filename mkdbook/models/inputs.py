"""What a network is told about its input: how many electrodes each modality has.

Networks do not look the channel counts up in a data set's layout; they are
told them (``n_channels={"eeg": 32, "eog": 2}``), as braindecode's models are
told ``n_chans``. That keeps the networks free of any data layer, and lets the
same network run on a data set with another montage.
"""

from __future__ import annotations

from collections.abc import Mapping


def channels_of(n_channels: Mapping[str, int], modalities: tuple[str, ...], network: str) -> dict[str, int]:
    """Return the channel count of each of ``modalities``, checked.

    Parameters
    ----------
    n_channels : mapping of str to int
        Modality name -> number of electrodes; entries for other modalities
        are ignored, so one mapping (for example
        :meth:`~mkdbook.data.SegmentSet.model_inputs`'s) serves every network.
    modalities : tuple of str
        The modalities the network reads.
    network : str
        The network's name, for the error message.

    Returns
    -------
    dict of str to int
        The entries of ``modalities``, in that order.

    Raises
    ------
    ValueError
        If a modality is missing or its count is not a positive integer.
    """
    missing = [m for m in modalities if m not in n_channels]
    if missing:
        raise ValueError(f"n_channels has no entry for modality {missing[0]!r}, which {network} reads; "
                         f"got {dict(n_channels)}, expected entries for {list(modalities)}")
    counts = {m: n_channels[m] for m in modalities}
    for modality, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"n_channels[{modality!r}] must be a positive integer, got {count!r}")
    return counts
