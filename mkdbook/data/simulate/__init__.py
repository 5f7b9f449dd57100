"""A simulated DEAP cohort, written in DEAP's own file format.

Real DEAP cannot be shipped with the book (its licence forbids it), so the
chapters run by default on a cohort generated here and written exactly as
DEAP's ``data_preprocessed_python/sNN.dat`` files are: a protocol-2 pickle of
``{"data": (40, 40, 8064) float64, "labels": (40, 4) float64}``. Everything
downstream (reader, segments, models) is then the same code for real and
simulated data. ``simulate_cohort(..., format="bids")`` writes the same cohort
as a BIDS data set instead (:mod:`mkdbook.data.export`); its samples, float32
values kept in float64, read back bit for bit from either copy.

The generative model, in one paragraph. Forty "videos" fill the four quadrants
of the valence-arousal plane, ten each, as DEAP's were chosen to (Koelstra et
al., 2012); every subject responds to each video with a latent valence and
arousal (the video's mean plus a personal response). The latent state shapes the
60 s of video (never the 3 s baseline) through physiology-sized effects:
posterior-dominant alpha at the subject's individual alpha frequency weakens
with arousal, frontal alpha asymmetry follows valence, temporal beta/gamma rise
with valence and arousal, and the blink and saccade rates of the EOG follow
arousal and, more weakly, valence. The EOG electrodes also record the muscles
around the eye (corrugator, frontalis, orbicularis oculi, temporalis): a
20-64 Hz EMG whose amplitude falls with valence and rises with arousal, with
orbicularis bursts at every smile; and part of every viewer's blinking and
gaze is locked to the film, the same for all subjects and free of emotion.
The state is not constant within a trial: it wanders second by second around
the trial's value, and the signals follow it. Under those rhythms lies a spatially
correlated 1/f background. Each trial also carries nuisance "fingerprints" that
are constant within it (spectral tilt, electrode gains, noise floor, residual
mains, EOG offsets): they carry no emotion, but segments of one trial share
them, which is what lets a leaky segment-level split look far better than it is.
Ratings are the latent state seen through a subject's scale use: ``5 + scale *
latent + bias + noise``, clipped to 1-9. Residual ocular potentials spread into
frontal EEG (imperfect artefact removal) and the EOG electrodes pick up frontal
brain activity, as real ones do.

Units: EEG, EOG and EMG in microvolts, as DEAP's; GSR as skin conductance in
microsiemens, temperature in degrees C; respiration and plethysmograph in
arbitrary units of about 1. The peripheral channels are plausible in shape and
timing only: this project never uses them, and DEAP's own units for them differ.

Variants (:data:`VARIANTS`) switch pathways off, to test a pipeline against a
known truth: ``"null"`` makes the ratings follow a second, independent latent
state, so no method may beat chance; ``"no-emg"`` removes the muscle activity
from the EOG; ``"eeg-only-valence"`` keeps valence out
of every non-EEG channel, a negative control: no EOG-only network can learn
valence there, from labels or from any teacher, because nothing in its input
carries it (a teacher can only help a student use what its own input holds).

The simulator is a package, one module per part of the model: ``config``
(parameters), ``variants``, ``latents`` (traits and latent state),
``streams`` (random draws), ``noise`` (coloured noise), ``eeg``, ``eog``,
``emg`` (periocular muscle activity), ``peripheral``, ``subject`` (one
subject's signals), ``truth`` (the latent state on disk: :func:`read_latent`,
:func:`segment_latent`, :func:`label_probability`) and ``cohort`` (files on
disk, with ``latent/sNN.npz`` beside them). The names below are its public interface.

Works cited:

* Koelstra S, et al. (2012). DEAP: A database for emotion analysis using physiological
  signals. IEEE Trans Affect Comput 3(1):18-31.
"""

from mkdbook.data.simulate.cohort import SIMULATION_MANIFEST, PENDING_NAME, load_manifest, simulate_cohort
from mkdbook.data.simulate.config import SimulationConfig
from mkdbook.data.simulate.eeg import ASYMMETRY_PAIRS, EEG_PASSBAND, LINE_FREQUENCY_HZ, electrode_positions
from mkdbook.data.simulate.latents import SubjectLatents, SubjectTraits
from mkdbook.data.simulate.streams import MAX_SUBJECTS, simulate_latents
from mkdbook.data.simulate.subject import simulate_subject
from mkdbook.data.simulate.truth import Latent, label_probability, read_latent, segment_latent
from mkdbook.data.simulate.variants import VARIANTS, VariantSettings, variant_settings

__all__ = [
    "ASYMMETRY_PAIRS", "EEG_PASSBAND", "LINE_FREQUENCY_HZ", "SIMULATION_MANIFEST", "MAX_SUBJECTS",
    "Latent", "PENDING_NAME", "VARIANTS", "SimulationConfig", "SubjectLatents", "SubjectTraits",
    "VariantSettings", "electrode_positions", "load_manifest", "simulate_cohort",
    "label_probability", "read_latent", "segment_latent", "simulate_latents", "simulate_subject",
    "variant_settings",
]
