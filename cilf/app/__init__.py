"""The application around the model (as open_clip_train is to open_clip): training parameters and engine, run
folders, cross-fitting, evaluation, CLIP pretraining, predict. May import cilf.data, cilf.persist, cilf.model
and the base modules; nothing above."""
