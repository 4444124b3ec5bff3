"""Dataset-side components (transforms, workarounds) registered into mmdet3d."""
