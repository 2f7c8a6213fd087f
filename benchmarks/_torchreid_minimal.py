"""A minimal stand-in for torchreid 0.2.5's training data path, used by bench_loader.py only when
torchreid cannot be imported. It follows torchreid's behaviour (PIL ``convert('RGB')`` decoding,
``torchvision.transforms`` v1 ``Resize`` + flip + 1.125x enlarge-and-crop translation + ``ToTensor``
+ ``Normalize`` + per-pixel-loop-free random erasing, the P x K identity sampler) but is written
here; results with it are labelled "minimal", not "torchreid".
"""

from __future__ import annotations

import copy
import math
import random
from collections import defaultdict

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T


class Random2DTranslation:
    def __init__(self, height, width, p=0.5):
        self.height, self.width, self.p = height, width, p

    def __call__(self, img):
        if random.uniform(0, 1) > self.p:
            return img.resize((self.width, self.height), Image.BILINEAR)
        nw, nh = int(round(self.width * 1.125)), int(round(self.height * 1.125))
        img = img.resize((nw, nh), Image.BILINEAR)
        x = int(round(random.uniform(0, nw - self.width)))
        y = int(round(random.uniform(0, nh - self.height)))
        return img.crop((x, y, x + self.width, y + self.height))


class RandomErasing:
    def __init__(self, p=0.5, sl=0.02, sh=0.4, r1=0.3, mean=(0.485, 0.456, 0.406)):
        self.p, self.sl, self.sh, self.r1, self.mean = p, sl, sh, r1, mean

    def __call__(self, img):
        if random.uniform(0, 1) > self.p:
            return img
        for _ in range(100):
            area = img.size(1) * img.size(2)
            target = random.uniform(self.sl, self.sh) * area
            ratio = random.uniform(self.r1, 1 / self.r1)
            h, w = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
            if w < img.size(2) and h < img.size(1):
                y, x = random.randint(0, img.size(1) - h), random.randint(0, img.size(2) - w)
                for c in range(3):
                    img[c, y:y + h, x:x + w] = self.mean[c]
                return img
        return img


def build_transforms(height, width, transforms=(), **_):
    steps = [T.Resize((height, width))]
    if "random_flip" in transforms:
        steps.append(T.RandomHorizontalFlip())
    if "random_crop" in transforms:
        steps.append(Random2DTranslation(height, width))
    steps += [T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
    if "random_erase" in transforms:
        steps.append(RandomErasing())
    return T.Compose(steps), None


class ImageDataset(torch.utils.data.Dataset):
    def __init__(self, train, query, gallery, transform=None, mode="train", verbose=False):
        self.data, self.transform = train, transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        path, pid, camid, dsetid = self.data[i]
        img = Image.open(path).convert("RGB")
        return {"img": self.transform(img), "pid": pid, "camid": camid, "impath": path, "dsetid": dsetid}


class RandomIdentitySampler(torch.utils.data.Sampler):
    def __init__(self, data_source, batch_size, num_instances):
        self.num_instances, self.num_pids_per_batch = num_instances, batch_size // num_instances
        self.index_dic = defaultdict(list)
        for index, items in enumerate(data_source):
            self.index_dic[items[1]].append(index)
        self.pids = list(self.index_dic)
        self.length = sum(max(len(v), num_instances) // num_instances * num_instances for v in self.index_dic.values())

    def __iter__(self):
        chunks = defaultdict(list)
        for pid in self.pids:
            idxs = copy.deepcopy(self.index_dic[pid])
            if len(idxs) < self.num_instances:
                idxs = list(np.random.choice(idxs, size=self.num_instances, replace=True))
            random.shuffle(idxs)
            for k in range(len(idxs) // self.num_instances):
                chunks[pid].append(idxs[k * self.num_instances:(k + 1) * self.num_instances])
        avail, out = list(self.pids), []
        while len(avail) >= self.num_pids_per_batch:
            for pid in random.sample(avail, self.num_pids_per_batch):
                out.extend(chunks[pid].pop(0))
                if not chunks[pid]:
                    avail.remove(pid)
        return iter(out)

    def __len__(self):
        return self.length
