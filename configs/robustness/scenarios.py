# Sensor-failure scenarios of tools/robustness_eval.py: name -> description and the test-time
# transforms (plugin/datasets/transforms/{lidar,camera}_failures.py) that the tool inserts
# right before Pack3DDetInputs of the config's test pipeline. The names follow MoME's table
# (Park et al., CVPR 2025: clean, LiDAR drop, 4-beam LiDAR, limited LiDAR FOV, camera view
# drop, occlusion) plus all cameras off and calibration noise. Seeds make every model see
# the same corruption of the same sample.
scenarios = dict(
    clean=dict(desc='no failure', transforms=[]),
    lidar_drop=dict(desc='LiDAR delivers no points', transforms=[dict(type='LiDARDrop')]),
    lidar_4beam=dict(desc='4 of 32 beams (0, 8, 16, 24)',
                     transforms=[dict(type='LiDARBeamReduction', num_beams=4, total_beams=32)]),
    lidar_fov=dict(desc='LiDAR sees only +-60 deg of the front',
                   transforms=[dict(type='LiDARFieldOfView', half_angle=60.0)]),
    camera_front_drop=dict(desc='front camera blank', transforms=[dict(type='CameraViewDrop', views=['CAM_FRONT'])]),
    camera_3_drop=dict(desc='3 random cameras blank', transforms=[dict(type='CameraViewDrop', num_views=3, seed=0)]),
    camera_all_drop=dict(desc='all cameras blank', transforms=[dict(type='CameraViewDrop', views='all')]),
    occlusion=dict(desc='1-3 patches of 10-30 % per side in every view',
                   transforms=[dict(type='ImageOcclusion', num_patches=(1, 3), patch_size=(0.1, 0.3), seed=0)]),
    calibration_noise=dict(desc='every camera off by 1.0 deg and 5 cm',
                           transforms=[dict(type='CalibrationNoise', rotation_deg=1.0, translation_cm=5.0, seed=0)]),
)

# calibration error from well under to several feature cells (the calibration study of projects/studies/):
# every camera rotated by 0.5 / 1 / 2 / 4 / 8 / 16 degrees, or moved by 5 / 20 cm, and nothing else
calibration_levels = {
    **{f'calib_{deg:g}deg': dict(desc=f'every camera rotated by {deg:g} deg', transforms=[
        dict(type='CalibrationNoise', rotation_deg=deg, translation_cm=0.0, seed=0)]) for deg in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)},
    **{f'calib_{cm:g}cm': dict(desc=f'every camera moved by {cm:g} cm', transforms=[
        dict(type='CalibrationNoise', rotation_deg=0.0, translation_cm=cm, seed=0)]) for cm in (5.0, 20.0)},
}
scenarios = dict(scenarios, **calibration_levels)
