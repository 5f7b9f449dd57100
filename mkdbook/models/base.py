"""The contract every network of the book keeps, written once: :class:`Network`.

Networks do not look the channel counts up in a data set's layout; they are
told them (``n_channels={"eeg": 32, "eog": 2}``), as braindecode's models are
told ``n_chans``. That keeps the networks free of any data layer, and lets the
same network run on a data set with another montage.

Every network is built from the same five arguments, ``n_channels``,
``n_classes``, ``n_times``, ``sfreq`` and ``config``, as every braindecode
model is built from those of its ``EEGModuleMixin``. :class:`Network` takes
them, checks the channel counts, keeps them as attributes and documents
them; a network only says which modalities it reads, what its configuration
is, and builds its layers (:meth:`Network.build`) and its ``forward``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import nn

from mkdbook.core.docstrings import docdict, fill_doc

__all__ = ["Network", "channels_of"]


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


def _parameters_doc(modalities: tuple[str, ...]) -> str:
    """The constructor's parameters, saying which entries of ``n_channels`` a network reads."""
    names = [f"``{m}``" for m in modalities]
    if not names:
        read = "only the entries of the network's ``modalities`` are read"
    elif len(names) == 1:
        read = f"only the entry for {names[0]} is read"
    else:
        read = f"the entries for {', '.join(names[:-1])} and {names[-1]} are read, others ignored"
    return (f'n_channels : mapping of str to int\n'
            f'    Electrodes per modality (``{{"eog": 2, "eeg": 32}}`` for DEAP);\n'
            f'    {read}.\n'
            f'{docdict["network_inputs"]}')


def _fill_network_doc(network: type) -> type:
    """Fill the ``%(network_parameters)s`` line (and any :data:`~mkdbook.core.docstrings.docdict` key)."""
    return fill_doc(network, {"network_parameters": _parameters_doc(network.modalities)})


@_fill_network_doc
class Network(nn.Module):
    """Base of every network: the constructor's arguments, checked, kept and documented once.

    A network subclasses it, sets the class attributes ``modalities`` and
    ``config_class``, builds its layers in :meth:`build` (called by this
    constructor, after the arguments are checked and kept) and defines
    ``forward(batch)``: ``batch`` maps modality names to tensors
    ``(B, n_channels[modality], n_times)``, of which ``forward`` reads only
    the keys in ``modalities``, and it returns a
    :class:`~mkdbook.models.outputs.ModelOutput`. A subclass's docstring
    names its parameters with a line ``%(network_parameters)s``, which is
    replaced by the parameters below, saying which entries of
    ``n_channels`` that network reads, followed by its ``config``.

    Parameters
    ----------
    %(network_parameters)s
    config : dataclass instance, optional
        The network's hyper-parameters, an instance of its ``config_class``;
        ``config_class()`` when omitted.

    Attributes
    ----------
    modalities : tuple of str
        Input keys read by ``forward`` (a class attribute).
    config_class : type
        The network's configuration dataclass (a class attribute).
    n_channels : dict of str to int
        Electrodes of each of ``modalities``, in that order, checked.
    n_classes : int
    n_times : int
    sfreq : float
    config
        The configuration the network was built with.

    Raises
    ------
    ValueError
        If ``n_channels`` lacks a modality the network reads, or a count is
        not a positive integer.
    """

    modalities: ClassVar[tuple[str, ...]] = ()
    config_class: ClassVar[type]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _fill_network_doc(cls)

    def __init__(
        self,
        n_channels: Mapping[str, int],
        n_classes: int = 2,
        n_times: int = 512,
        sfreq: float = 128.0,
        config: Any = None,
    ) -> None:
        super().__init__()
        self.n_channels = channels_of(n_channels, self.modalities, type(self).__name__)
        self.n_classes, self.n_times, self.sfreq = n_classes, n_times, sfreq
        self.config = config or self.config_class()
        self.build()

    def build(self) -> None:
        """Create the network's layers from the attributes the constructor kept.

        Raises
        ------
        NotImplementedError
            Always: every network defines its own.
        """
        raise NotImplementedError(f"{type(self).__name__} must define build()")
