"""The entry points, each a job over shards run by ``v2d_vox.runner``: ``download`` (tables in),
``reprocess`` (shards in, new subsamplers), ``scan`` (shards in, a report and optionally clean shards).
Their parameters are typed and documented in their signatures (``v2d_vox.options``); the CLI is built
from them."""
