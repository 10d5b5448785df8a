"""The 20,490-parameter CNN of issue 17 (plain torch: edgefl names it as `cnn.py:cnn`, Flower imports it).

conv 1→16 3×3 pad 1, ReLU, max-pool 2; conv 16→32 3×3 pad 1, ReLU, max-pool 2; linear 32·7·7→10.
"""

from torch import nn

MEAN, STD = 0.1307, 0.3081  # MNIST normalisation, applied by both sides


class CNN(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        )
        self.classifier = nn.Linear(32 * 7 * 7, num_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.classifier(self.features(x))


def cnn(in_channels: int = 1, num_classes: int = 10) -> CNN:
    return CNN(in_channels, num_classes)
