"""Out-of-fold predictions -> AUROC and F1 per fold, their mean and confidence interval."""
