"""What a data set's files hold: channels, modalities, sampling rate, trials, ratings.

The layout of a data set is one value, a :class:`Layout`, rather than module
constants, so that the rest of the data layer can serve a second data set by
being handed its layout. :data:`DEAP` is the layout of DEAP's preprocessed
Python release (Koelstra et al., 2012). Every other module asks for channels
by modality name (``"eeg"``, ``"eog"``, ...) through :meth:`Layout.picks`,
never by raw index arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mkdbook.core.checks import check_option


def _unique_names(argument: str, names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(names)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"{argument} must be a non-empty sequence of non-empty strings, got {names!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{argument} must name each entry once; {repeated} appear more than once")
    return names


@dataclass(frozen=True)
class Layout:
    """The layout of one data set's trials, validated when built.

    Attributes
    ----------
    name : str
        Short name of the data set, for messages and cache manifests.
    channels : tuple of str
        Every channel of a trial, in file order.
    modality_channels : tuple of (str, tuple of str)
        Modality name -> its channel names, as pairs so that a layout is
        hashable; read it through :attr:`modalities`. A mapping is accepted
        when building and stored as pairs. Channels need not belong to any
        modality; a channel belongs to at most one.
    channel_types : tuple of str
        The MNE channel type of each channel (``"eeg"``, ``"eog"``, ``"bio"``, ...),
        in file order.
    sfreq : float
        Sampling rate in Hz.
    n_trials : int
        Trials per subject file.
    n_samples : int
        Samples per trial, pre-trial baseline included.
    baseline_seconds : float
        Length of the pre-trial baseline at the start of every trial.
    rating_scales : tuple of str
        The self-report scales, in the column order of a file's labels.
    rating_range : tuple of (float, float)
        Lowest and highest possible rating.
    """

    name: str
    channels: tuple[str, ...]
    modality_channels: tuple[tuple[str, tuple[str, ...]], ...]
    channel_types: tuple[str, ...]
    sfreq: float
    n_trials: int
    n_samples: int
    baseline_seconds: float
    rating_scales: tuple[str, ...]
    rating_range: tuple[float, float]

    def __post_init__(self) -> None:
        # Normalised to tuples here so that a layout built from lists or a
        # dict still hashes and compares by value.
        set_field = object.__setattr__
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        set_field(self, "channels", _unique_names("channels", self.channels))
        pairs = self.modality_channels
        pairs = pairs.items() if isinstance(pairs, Mapping) else pairs
        set_field(self, "modality_channels",
                  tuple((modality, tuple(names)) for modality, names in pairs))
        _unique_names("modality names", (modality for modality, _ in self.modality_channels))
        for modality, names in self.modality_channels:
            unknown = [name for name in _unique_names(f"channels of modality {modality!r}", names)
                       if name not in self.channels]
            if unknown:
                raise ValueError(f"modality {modality!r} names channels {unknown} that are not "
                                 f"in channels; expected some of {list(self.channels)}")
        _unique_names("channels of all modalities",
                      (name for _, names in self.modality_channels for name in names))
        set_field(self, "channel_types", tuple(self.channel_types))
        if len(self.channel_types) != len(self.channels):
            raise ValueError(f"channel_types must give one type per channel: got "
                             f"{len(self.channel_types)} for {len(self.channels)} channels")
        if not self.sfreq > 0:
            raise ValueError(f"sfreq must be > 0 Hz, got {self.sfreq!r}")
        for argument in ("n_trials", "n_samples"):
            value = getattr(self, argument)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{argument} must be a positive integer, got {value!r}")
        if not 0 <= self.samples(self.baseline_seconds) < self.n_samples:
            raise ValueError(f"baseline_seconds must be >= 0 and shorter than a trial of "
                             f"{self.n_samples} samples, got {self.baseline_seconds!r}")
        set_field(self, "rating_scales", _unique_names("rating_scales", self.rating_scales))
        set_field(self, "rating_range", tuple(self.rating_range))
        if len(self.rating_range) != 2 or not self.rating_range[0] < self.rating_range[1]:
            raise ValueError(f"rating_range must be (low, high) with low < high, got {self.rating_range!r}")

    @property
    def modalities(self) -> Mapping[str, tuple[str, ...]]:
        """Modality name -> channel names, read-only."""
        # Built on each access rather than cached: a cached proxy would stop
        # a layout (and the segments that carry it) from being pickled.
        return MappingProxyType(dict(self.modality_channels))

    def _check_modality(self, modality: str) -> tuple[str, ...]:
        check_option(f"modality of {self.name}", modality, tuple(self.modalities))
        return self.modalities[modality]

    def picks(self, modality: str) -> list[int]:
        """Return the channel indices (into :attr:`channels`) of one modality.

        Parameters
        ----------
        modality : str
            A key of :attr:`modalities`, for example ``"eeg"`` or ``"eog"``.

        Returns
        -------
        list of int
            Indices in the modality's channel order.

        Raises
        ------
        ValueError
            If ``modality`` is not a modality of this layout.
        """
        return [self.channels.index(name) for name in self._check_modality(modality)]

    def n_channels(self, modality: str) -> int:
        """Return how many channels ``modality`` has (raises ``ValueError`` if unknown)."""
        return len(self._check_modality(modality))

    def channel_counts(self) -> dict[str, int]:
        """Return modality name -> number of channels, as networks are told (``n_channels=``)."""
        return {modality: len(names) for modality, names in self.modality_channels}

    def channel_names(self, modalities: Iterable[str]) -> list[str]:
        """Return the channels of the given modalities, in file order.

        Raises
        ------
        ValueError
            If a modality is not one of this layout's.
        """
        wanted = {name for modality in modalities for name in self._check_modality(modality)}
        return [name for name in self.channels if name in wanted]

    def channel_type(self, channel: str) -> str:
        """Return the MNE channel type of ``channel`` (raises ``ValueError`` if unknown)."""
        check_option(f"channel of {self.name}", channel, self.channels)
        return self.channel_types[self.channels.index(channel)]

    def rating_column(self, scale: str) -> int:
        """Return the column of ``scale`` (``"valence"``, ``"arousal"``, ...) in a file's labels.

        Raises
        ------
        ValueError
            If ``scale`` is not one of :attr:`rating_scales`.
        """
        check_option(f"rating scale of {self.name}", scale, self.rating_scales)
        return self.rating_scales.index(scale)

    def samples(self, seconds: float) -> int:
        """Return the number of samples in ``seconds`` at :attr:`sfreq`, rounded to the nearest."""
        return round(seconds * self.sfreq)


_DEAP_EEG: tuple[str, ...] = (
    # DEAP's "Geneva" order (channels 0-31).
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3",
    "P7", "PO3", "O1", "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6",
    "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)

#: DEAP's preprocessed Python release: 40 trials of 40 channels (32 EEG, then
#: hEOG, vEOG and six other peripheral channels), 8064 samples at 128 Hz of
#: which the first 3 s are the pre-trial baseline, and four ratings from 1 to 9.
#: ``eog`` is the student's two electrodes.
DEAP = Layout(
    name="DEAP",
    channels=_DEAP_EEG + ("hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Resp", "Plet", "Temp"),
    modality_channels=(
        ("eeg", _DEAP_EEG),
        ("eog", ("hEOG", "vEOG")),
        ("emg", ("zEMG", "tEMG")),
        ("gsr", ("GSR",)),
        ("resp", ("Resp",)),
        ("ppg", ("Plet",)),
        ("temp", ("Temp",)),
    ),
    channel_types=("eeg",) * len(_DEAP_EEG)
    + ("eog", "eog", "emg", "emg", "gsr", "resp", "bio", "temperature"),
    sfreq=128.0,
    n_trials=40,
    n_samples=8064,
    baseline_seconds=3.0,
    rating_scales=("valence", "arousal", "dominance", "liking"),
    rating_range=(1.0, 9.0),
)
