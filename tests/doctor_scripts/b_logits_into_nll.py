"""The repository's PointNet loss module applies F.nll_loss to the classifier head's raw output, which has no
log_softmax: the "label loss" goes negative and the optimizer is rewarded for inflating the target's logit
(either a log_softmax at the end of the model or cross_entropy fixes it). Written like the repository's
train_classification.py: parse_args(), the model and its loss module built by name, a test() that switches
to eval mode, classifier.train() + StepLR per epoch, the best instance accuracy checkpointed. The point-cloud
encoder is replaced by a small CNN with the same classifier head (fc-bn-relu-dropout, fc)."""
import argparse
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as transforms

from cifar import CIFAR10

SOURCE = "https://github.com/yanx27/Pointnet_Pointnet2_pytorch/issues/30"
EXPECT = "loss-output-mismatch"


class get_model(nn.Module):
    def __init__(self, k=10):
        super(get_model, self).__init__()
        self.feat = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1))
        self.fc1 = nn.Linear(64, 256)
        self.bn1 = nn.BatchNorm1d(256)
        self.dropout = nn.Dropout(p=0.4)
        self.fc2 = nn.Linear(256, k)

    def forward(self, x):
        x = self.feat(x).view(x.size(0), -1)
        x = self.dropout(F.relu(self.bn1(self.fc1(x))))
        return self.fc2(x)  # labels_pred: no log_softmax


class PointNetLoss(nn.Module):
    def __init__(self):
        super(PointNetLoss, self).__init__()

    def forward(self, labels_pred, label):
        label_loss = F.nll_loss(labels_pred, label)
        return label_loss


def parse_args():
    parser = argparse.ArgumentParser("PointNet")
    parser.add_argument("--batch_size", type=int, default=32, help="batch size in training")
    parser.add_argument("--epoch", default=200, type=int, help="number of epoch in training")
    parser.add_argument("--learning_rate", default=0.001, type=float, help="learning rate in training")
    parser.add_argument("--num_category", default=10, type=int, help="training on ModelNet10/40")
    parser.add_argument("--decay_rate", type=float, default=1e-4, help="decay rate")
    parser.add_argument("--data_root", default=os.environ.get("CIFARLAB_DATA", "./data"))
    parser.add_argument("--log_dir", type=str, default="log", help="experiment root")
    return parser.parse_args()


def test(model, loader, num_class=10):
    mean_correct = []
    class_acc = np.zeros((num_class, 3))
    classifier = model.eval()
    with torch.no_grad():
        for j, (points, target) in enumerate(loader):
            pred = classifier(points)
            pred_choice = pred.data.max(1)[1]
            for cat in np.unique(target.numpy()):
                classacc = pred_choice[target == cat].eq(target[target == cat]).sum()
                class_acc[cat, 0] += classacc.item() / float(points[target == cat].size()[0])
                class_acc[cat, 1] += 1
            mean_correct.append(pred_choice.eq(target).sum().item() / float(points.size()[0]))
    class_acc[:, 2] = class_acc[:, 0] / np.maximum(class_acc[:, 1], 1)
    return np.mean(mean_correct), np.mean(class_acc[:, 2])


def main(args):
    checkpoints_dir = os.path.join(args.log_dir, "checkpoints")
    os.makedirs(checkpoints_dir, exist_ok=True)
    normalize = transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    train_dataset = CIFAR10(args.data_root, train=True, transform=transforms.Compose([transforms.ToTensor(), normalize]))
    test_dataset = CIFAR10(args.data_root, train=False, transform=transforms.Compose([transforms.ToTensor(), normalize]))
    trainDataLoader = torch.utils.data.DataLoader(train_dataset, batch_size=args.batch_size, shuffle=True,
                                                  drop_last=True)
    testDataLoader = torch.utils.data.DataLoader(test_dataset, batch_size=64, shuffle=False)

    classifier = get_model(args.num_category)
    criterion = PointNetLoss()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=args.learning_rate, betas=(0.9, 0.999), eps=1e-08,
                                 weight_decay=args.decay_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=20, gamma=0.7)
    best_instance_acc = 0.0

    for epoch in range(args.epoch):
        print("Epoch %d/%s:" % (epoch + 1, args.epoch))
        mean_correct = []
        classifier = classifier.train()
        scheduler.step()
        for batch_id, (points, target) in enumerate(trainDataLoader, 0):
            optimizer.zero_grad()
            pred = classifier(points)
            loss = criterion(pred, target.long())
            pred_choice = pred.data.max(1)[1]
            mean_correct.append(pred_choice.eq(target.long().data).sum().item() / float(points.size()[0]))
            loss.backward()
            optimizer.step()
        print("Train Instance Accuracy: %f" % np.mean(mean_correct))

        instance_acc, class_acc = test(classifier.eval(), testDataLoader, num_class=args.num_category)
        if instance_acc >= best_instance_acc:
            best_instance_acc = instance_acc
            torch.save({"epoch": epoch, "instance_acc": instance_acc, "class_acc": class_acc,
                        "model_state_dict": classifier.state_dict(),
                        "optimizer_state_dict": optimizer.state_dict()},
                       os.path.join(checkpoints_dir, "best_model.pth"))
        print("Test Instance Accuracy: %f, Class Accuracy: %f" % (instance_acc, class_acc))


if __name__ == "__main__":
    main(parse_args())
