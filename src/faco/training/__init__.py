"""Fine-tuning: model sources, data formatting, the train loop."""
