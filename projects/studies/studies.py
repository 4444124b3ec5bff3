"""The studies, as data: each names its question, its arms (a config and the overrides that
make the arm), its default seeds, how its runs are evaluated and where its results are
written up. `run_study.py STUDY` runs one of them; a new study or arm is a few lines here.

An arm's config is a key of the study's `configs`, which has one set of configs per data
set: 'synthetic' (the generated set, CPU recipes) and, where the study exists at full
scale, 'nuscenes' (the published recipes, 8 GPUs per run).
"""
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

SYNTHETIC = 'configs/synthetic/{}_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'
NUSCENES = 'configs/{}/{}_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py'
CAMERA = 'configs/synthetic/{}_synthetic-nus-3d.py'
WINDOW = 'model.pts_bbox_head.aqr_cfg.bias.window_size'
_RECIPE = 'cmt-camera-rescored_r18-384x96_1xb2-24e'                # the camera-only recipe
_DEPTH_1X = 'model.img_centre_head.loss_depth.loss_weight=1.0'      # it weighs its depth loss 3x


@dataclass(frozen=True)
class Arm:
    """One model of a study: `config` (a key of the study's configs, or a config path)
    with the `options` (mmengine `--cfg-options` KEY=VALUE strings) that make the arm."""
    name: str
    config: str
    options: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Study:
    """What a study trains and how it reads the runs.

    `val_interval`: epochs between the evaluations during training (None: the config's
    own; mmengine's loop always evaluates after the last epoch). `scenarios`: names of
    `configs/robustness/scenarios.py` each final checkpoint is tested under with
    `tools/robustness_eval.py`. `ratios`: scenarios also reported as NDS(scenario) /
    NDS(clean) per run. `noise_axes`: {axis label: {level: scenario}}, drawn as NDS
    against the level."""
    question: str
    configs: Dict[str, Dict[str, str]]
    arms: Tuple[Arm, ...]
    default_arms: Optional[Tuple[str, ...]] = None
    seeds: Tuple[int, ...] = (0, 1, 2)
    val_interval: Optional[int] = None
    scenarios: Tuple[str, ...] = ()
    ratios: Tuple[str, ...] = ()
    noise_axes: Dict[str, Dict[float, str]] = field(default_factory=dict)
    results: str = ''

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f'no arm {name!r}; the arms are {", ".join(a.name for a in self.arms)}')


_ROTATIONS = {deg: f'calib_{deg:g}deg' for deg in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)}
_TRANSLATIONS = {cm: f'calib_{cm:g}cm' for cm in (5.0, 20.0)}

STUDIES = dict(
    window=Study(
        question='How large should the local window of AQR\'s attention bias be, against CMT without a bias '
                 '(in BEV cells, or in metres: the same window on any grid)?',
        configs=dict(synthetic=dict(cmt=SYNTHETIC.format('cmt'), aqr=SYNTHETIC.format('cmt-aqr')),
                     nuscenes=dict(cmt=NUSCENES.format('cmt', 'cmt'), aqr=NUSCENES.format('aqr', 'cmt-aqr'))),
        arms=(Arm('cmt', 'cmt'),
              *(Arm(f'aqr-w{w}', 'aqr', (f'{WINDOW}={w}',)) for w in (5, 15, 25)),
              *(Arm(f'aqr-{m}m', 'aqr', (f'{WINDOW}_m={float(m)}',)) for m in (3, 9, 15))),
        default_arms=('cmt', 'aqr-w5', 'aqr-w15', 'aqr-w25'),
        val_interval=5,
        results='docs/results/aqr.md'),
    variants=Study(
        question='Do the fusion necks (FuTr, SparseBEV) and the triplane improve on CMT?',
        configs=dict(synthetic=dict(cmt=SYNTHETIC.format('cmt'), futr=SYNTHETIC.format('cmt-futr'),
                                    sparsebev=SYNTHETIC.format('cmt-sparsebev'),
                                    triplane=SYNTHETIC.format('cmt-triplane')),
                     nuscenes=dict(cmt=NUSCENES.format('cmt', 'cmt'), futr=NUSCENES.format('futr', 'cmt-futr'),
                                   sparsebev=NUSCENES.format('sparsebev', 'cmt-sparsebev'),
                                   triplane=NUSCENES.format('triplane', 'cmt-triplane'))),
        arms=tuple(Arm(f'cmt-{m}' if m != 'cmt' else m, m) for m in ('cmt', 'futr', 'sparsebev', 'triplane')),
        results='docs/results/fusion_necks.md'),
    camera=Study(
        question='Can the camera half of the detector localise objects on its own, and what makes it?',
        configs=dict(synthetic={name: CAMERA.format(name) for name in (
            'cmt-camera_r18-256x144_1xb2-12e', 'cmt-camera-dense_r18-256x144_1xb2-12e',
            'cmt-camera-dense_r18-384x96_1xb2-12e', 'cmt-camera-queries_r18-384x96_1xb2-12e',
            'cmt-camera-rescored_r18-384x96_1xb2-12e', _RECIPE)}),
        arms=(Arm('baseline', 'cmt-camera_r18-256x144_1xb2-12e'),
              Arm('dense', 'cmt-camera-dense_r18-256x144_1xb2-12e'),
              Arm('framing', 'cmt-camera-dense_r18-384x96_1xb2-12e'),
              Arm('queries', 'cmt-camera-queries_r18-384x96_1xb2-12e'),
              Arm('rescored', 'cmt-camera-rescored_r18-384x96_1xb2-12e'),
              Arm('rescored-24e', _RECIPE, (_DEPTH_1X, 'model.img_centre_head.depth_focal=None')),
              Arm('depth-1x', _RECIPE, (_DEPTH_1X,)),
              Arm('recipe', _RECIPE),
              Arm('depth-r1', _RECIPE, (_DEPTH_1X, 'model.img_centre_head.depth_radius=1')),
              Arm('ground', _RECIPE, (_DEPTH_1X, 'model.img_centre_head.ground_prior=True')),
              Arm('depth-10x', _RECIPE, ('model.img_centre_head.loss_depth.loss_weight=10.0',))),
        default_arms=('recipe',),
        results='docs/results/camera.md'),
    modality_dropout=Study(
        question='What does training with a missing sensor (CMT\'s modality masking) buy when a sensor fails?',
        configs=dict(synthetic=dict(cmt=SYNTHETIC.format('cmt'), aqr=SYNTHETIC.format('cmt-aqr'),
                                    cmt_moddrop=SYNTHETIC.format('cmt-moddrop'),
                                    aqr_moddrop=SYNTHETIC.format('cmt-aqr-moddrop'))),
        arms=(Arm('cmt', 'cmt'), Arm('aqr', 'aqr'), Arm('cmt-moddrop', 'cmt_moddrop'),
              Arm('aqr-moddrop', 'aqr_moddrop'),
              # the masked recipe keeping 50 of the demo's learned reference points (unscored)
              Arm('cmt-moddrop-learned50', 'cmt_moddrop', ('model.pts_bbox_head.learned_queries=50',
                                                           'model.pts_bbox_head.query_generator.generators.1.num_query=100'))),
        default_arms=('cmt', 'aqr', 'cmt-moddrop', 'aqr-moddrop'),
        scenarios=('clean', 'lidar_drop', 'camera_all_drop'),
        ratios=('lidar_drop',),
        results='docs/results/robustness.md'),
    calibration=Study(
        question='Does fusion that samples the images at projected points (SparseBEV, FuTr) degrade more '
                 'gracefully under calibration error than attention over all camera tokens (CMT, AQR)?',
        configs=dict(synthetic=dict(cmt=SYNTHETIC.format('cmt'), aqr=SYNTHETIC.format('cmt-aqr'),
                                    futr=SYNTHETIC.format('cmt-futr'), sparsebev=SYNTHETIC.format('cmt-sparsebev'))),
        arms=(Arm('cmt', 'cmt'), Arm('aqr', 'aqr'), Arm('futr', 'futr'), Arm('sparsebev', 'sparsebev')),
        seeds=(0, 1),
        # every camera blank shows how much a model uses its cameras at all
        scenarios=('clean', *_ROTATIONS.values(), *_TRANSLATIONS.values(), 'camera_all_drop'),
        ratios=('calib_4deg', 'calib_16deg'),
        noise_axes={'camera rotation error (deg)': _ROTATIONS, 'camera translation error (cm)': _TRANSLATIONS},
        results='docs/results/fusion_necks.md'),
)
