"""Product photos the scale demo runs on: a few GroceryStoreDataset images, pinned like models (upstream URL +
sha256), installed with :func:`models.registry.install` from GitHub or from a mirror laid out as
``grocery/<split>/…`` (e.g. ``../shared/data``, whose ``grocery/`` folder holds byte copies)."""

from __future__ import annotations

from models.spec import ModelSpec

_REPO = "marcusklasson/GroceryStoreDataset"
_COMMIT = "fc80ba90f803d79d0383df52c5a4ac5de99ff6fc"
_ATTRIBUTION = ("GroceryStoreDataset, (c) 2019 Marcus Klasson, MIT licence; M. Klasson, C. Zhang, H. Kjellstrom, "
                "'A Hierarchical Grocery Store Image Dataset with Visual and Semantic Labels', WACV 2019.")

_FILES: dict[str, tuple[str, int]] = {
    "train/Fruit/Banana/Banana_001.jpg": ("f946127bf43638f87fe965ace11f8d912dedfae0dbb0df3ef591bf32a208b501", 22320),
    "train/Fruit/Banana/Banana_002.jpg": ("e600b2a24c23dc9818e19f8f5bd25a8f4d716933cf805a1f57a2b479c012002e", 17697),
    "train/Fruit/Banana/Banana_003.jpg": ("6929e240d46421d3577919d30cc7e2f41f5bb9e01f5aea5ce8b475a13980a958", 17337),
    "train/Fruit/Kiwi/Kiwi_001.jpg": ("a381ca315bb852ae30529736a81ecf6d7e6515309fb5eb458e65bd8f33ef060c", 22240),
    "train/Fruit/Kiwi/Kiwi_002.jpg": ("4c11c19df6237f405a79ea58441bebe2f09f79f5f92c107bc53b4490ee826f03", 20202),
    "train/Fruit/Kiwi/Kiwi_003.jpg": ("9ffb59c2a3a050d07c9e2dd90324783ad269e3463a4a85566990036d07d47121", 18986),
    "train/Vegetables/Pepper/Red-Bell-Pepper/Red-Bell-Pepper_001.jpg":
        ("974f89402a63be2e2fc08da10bfb7eaae62ff538c26c9d9fda88896214422848", 24987),
    "val/Fruit/Banana/Banana_001.jpg": ("19f95b1af7f8686d0f1639163456ce42fcecf4f06f15c84f782eb6c6de57ef57", 25548),
    "val/Vegetables/Pepper/Red-Bell-Pepper/Red-Bell-Pepper_001.jpg":
        ("af34805ec9d9f6a8d4dbe0c80f9b34dc3806bc8e3513fb35e742ddc9f4da8ff1", 23135),
}


def _photo(path: str, sha256: str, size: int) -> ModelSpec:
    return ModelSpec(
        name=f"grocery:{path}", task="sample_media", relpath=f"grocery/{path}",
        url=f"https://github.com/{_REPO}/raw/{_COMMIT}/dataset/{path}", sha256=sha256, size=size, licence="MIT",
        licence_caveat=_ATTRIBUTION, input_size=None, preprocessing="JPEG photo", decoder="none", runtime="none",
        source=f"{_REPO}@{_COMMIT}:dataset/{path}")


#: The scale demo's photos by their path inside the dataset's ``dataset/`` folder.
GROCERY_SAMPLES: dict[str, ModelSpec] = {path: _photo(path, *meta) for path, meta in _FILES.items()}
