"""What a trained model is scored on: attention statistics (entropy, regions) and the attention Jaccard."""
