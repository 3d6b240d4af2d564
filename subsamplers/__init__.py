"""Built-in subsamplers. Importing this package registers them (see v2d_vox.subsampler)."""
