"""Installs the CMT/AQR MMDetection3D plugin (`import plugin` registers its modules).

`pip install --no-build-isolation -e .` also compiles the CPU kernel of the AQR window
attentions (`aqr_attention/csrc/window_attention_cpu.cpp`) against the installed
torch, for the CPU it is built on (-march=native; set CMT_PORTABLE_KERNEL=1 for a build
that runs on any x86-64). Without it the attentions take their pure-PyTorch route, which
is exact but slower.
"""
import os

from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

setup(
    name='cmt-aqr-plugin',
    version='0.1.0',
    description='CMT camera+LiDAR detector with AQR attention bias, as an mmdet3d 1.x plugin',
    license='Apache-2.0',
    packages=find_packages(include=['plugin', 'plugin.*', 'aqr_attention', 'aqr_attention.*']),
    ext_modules=[
        CppExtension('aqr_attention._window_attention_cpu', ['aqr_attention/csrc/window_attention_cpu.cpp'],
                     # -g0: no debug info (Python's CFLAGS carry -g), a faster build, the same code
                     extra_compile_args=['-O3', '-g0'] + ([] if os.environ.get('CMT_PORTABLE_KERNEL') == '1'
                                                   else ['-march=native'])),
    ],
    cmdclass={'build_ext': BuildExtension},
    python_requires='>=3.8',
)
