"""A small CNN for MNIST-sized inputs: cheap enough to train on a board and to send over a slow link."""

from torch import nn


class SmallCNN(nn.Module):
    """conv32 → pool → conv64 → pool → adaptive 4×4 → fc128 → classifier (≈150k parameters)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, hidden: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * width * 16, hidden),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(hidden, num_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.classifier(self.features(x))
