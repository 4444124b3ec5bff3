from .cmt_head import CmtHead, SeparateTaskHead
from .query_denoising import DNMeta, build_dn_queries

__all__ = ['CmtHead', 'SeparateTaskHead', 'DNMeta', 'build_dn_queries']
