"""One training run: the config, the loop (train_one_epoch, evaluate), checkpoints, run directories, DDP."""
