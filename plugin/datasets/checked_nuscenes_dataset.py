"""mmdet3d's NuScenesDataset with its inputs checked, so bad data fails with a clear message.

Everything is mmdet3d's; this adds, each with the file / sample token / key in the error:
* info file: one written by mmdet3d 0.x (`infos` / `metadata` keys) or for another
  nuScenes version than the config's `metainfo.version` (which the evaluator would only
  notice as "samples in split don't match");
* calibration: NaN / inf or singular `cam2img`, `lidar2cam`, `lidar2ego` - checked for
  every sample when the dataset is built, not hours into training;
* point files: missing, or truncated (size not a whole number of records);
* images: missing or undecodable JPEGs, diagnosed when loading a sample fails;
* any other failure while preparing a sample gets a note naming the sample and its files.
"""
import os.path as osp

from mmdet3d.datasets import NuScenesDataset
from mmdet3d.datasets.transforms import LoadPointsFromFile, LoadPointsFromMultiSweeps
from mmdet3d.registry import DATASETS
from mmengine.fileio import load

from .input_checks import InputError, check_calibration, check_point_file, image_decodes


@DATASETS.register_module()
class CheckedNuScenesDataset(NuScenesDataset):

    def load_data_list(self):
        # mmengine merges the file's metainfo under the config's, losing the file's version:
        # take the config's out so that the file's shows, then compare
        wanted = self._metainfo.pop('version', None)
        try:
            data_list = super().load_data_list()
        except (TypeError, ValueError, KeyError) as err:
            self._explain_info_file(err)
            raise
        found = self._metainfo.get('version')
        if wanted is not None and found is not None and found != wanted:
            raise InputError(f'{self.ann_file} was created from nuScenes {found}, but the config sets '
                             f'metainfo.version={wanted!r}; regenerate the info files with tools/create_data.py '
                             f'or set the version')
        if wanted is not None:
            self._metainfo['version'] = wanted
        return data_list

    def _explain_info_file(self, err: Exception) -> None:
        annotations = load(self.ann_file)
        if isinstance(annotations, dict) and 'infos' in annotations:
            raise InputError(
                f'{self.ann_file} is an mmdet3d 0.x info file (keys {sorted(annotations)[:4]}); mmdet3d 1.x needs '
                f'"data_list" / "metainfo": run tools/create_data.py, or mmdet3d\'s '
                f'tools/dataset_converters/update_infos_to_v2.py on it') from err
        if not isinstance(annotations, dict) or 'data_list' not in annotations:
            raise InputError(f'{self.ann_file} is not an mmdet3d info file (loaded a {type(annotations).__name__}'
                             f'{" with keys " + str(sorted(annotations)[:6]) if isinstance(annotations, dict) else ""}'
                             f')') from err

    def parse_data_info(self, info: dict) -> dict:
        check_calibration(info, info.get('token', '?'), self.modality.get('use_camera', False))
        return super().parse_data_info(info)

    def _point_dims(self):
        """load_dim of the keyframe and sweep loaders of the pipeline (None if absent)."""
        key = sweep = None
        for transform in getattr(self.pipeline, 'transforms', []):
            if isinstance(transform, LoadPointsFromFile):
                key = transform.load_dim
            elif isinstance(transform, LoadPointsFromMultiSweeps):
                sweep = transform.load_dim
        return key, sweep

    def prepare_data(self, index: int):
        info = self.get_data_info(index)
        token = info.get('token', f'#{index}')
        key_dim, sweep_dim = self._point_dims()
        if key_dim is not None and 'lidar_path' in info:
            check_point_file(info['lidar_path'], key_dim, token)
        if sweep_dim is not None:
            for sweep in info.get('lidar_sweeps', []):
                check_point_file(sweep['lidar_points']['lidar_path'], sweep_dim, token)
        try:
            return super().prepare_data(index)
        except Exception as err:
            images = [cam['img_path'] for cam in info.get('images', {}).values() if 'img_path' in cam]
            for path in images:
                why = image_decodes(path)
                if why is not None:
                    raise InputError(f'sample {token}: image {path} {why}') from err
            err.add_note(f'while preparing sample {token} (index {index} of {osp.basename(self.ann_file)}): '
                         f'points {info.get("lidar_path")}, images {images}')
            raise
