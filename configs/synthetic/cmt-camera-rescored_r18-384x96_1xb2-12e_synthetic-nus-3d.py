# The image-seeded camera-only CMT with every query at a camera-centre peak and its
# detections scored as TransFusion scores its heatmap queries: the decoder's class
# probability times the peak's heatmap score, for the peak's class only.
_base_ = ['./cmt-camera-queries_r18-384x96_1xb2-12e_synthetic-nus-3d.py']

model = dict(pts_bbox_head=dict(learned_queries=0, query_score_prior=True))
