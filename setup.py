"""Installs the CMT/AQR MMDetection3D plugin (`import plugin` registers its modules)."""
from setuptools import find_packages, setup

setup(
    name='cmt-aqr-plugin',
    version='0.1.0',
    description='CMT camera+LiDAR detector with AQR attention bias, as an mmdet3d 1.x plugin',
    packages=find_packages(include=['plugin', 'plugin.*']),
    python_requires='>=3.8',
)
