"""A generator of small data sets in the exact nuScenes on-disk format (scenes, samples,
sweeps, calibrated sensors, LiDAR point clouds, six camera images, annotations), so that
mmdet3d's converter, its nuScenes dataset classes and nuscenes-devkit's evaluation run
unchanged without the real data. Entry point: tools/create_synthetic_nuscenes.py
(`nuscenes_generator.generate_dataset`)."""
