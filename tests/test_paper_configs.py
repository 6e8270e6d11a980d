"""Tables VIII-IX configs: batch-norm models at the paper's settings, tiny models in the cpu variants."""
import pytest

from tiny_configs import load_config_module

from gfa_jax import config as gfa_config
from gfa_jax.models import get_model

cifar_vgg16_layerwise = load_config_module("cifar_vgg16_layerwise")
cifar100_wrn_layerwise = load_config_module("cifar100_wrn_layerwise")


@pytest.mark.parametrize("module, model, cpu_model, dataset", [
    (cifar_vgg16_layerwise, "vgg16_bn", "vgg16_bn_tiny", "cifar10"),
    (cifar100_wrn_layerwise, "wrn_28_10", "wrn_10_1", "cifar100"),
])
@pytest.mark.parametrize("row", ["standard", "adv_input", "conv_all", "all_o", "all_w", "all_w,cpu", "conv_all,fixed"])
def test_cifar_layerwise_configs_validate_at_the_paper_settings(module, model, cpu_model, dataset, row):
    config = module.get_config(row)
    gfa_config.validate(config)
    assert config.model.name == (cpu_model if "cpu" in row else model)
    assert config.data.name == dataset and config.data.source == "tfds" and config.data.augmentation == "crop_flip"
    assert config.num_epochs == (2 if "cpu" in row else 200)
    opt = config.optimizer
    assert (opt.name, opt.learning_rate, opt.momentum, opt.weight_decay) == ("sgd", 0.1, 0.9, 1e-4)
    assert (opt.schedule, tuple(opt.decay_epochs), opt.decay_factor, opt.warmup_steps) == ("multistep", (100, 150), 0.1, 0)
    assert len(config.gfa.beta) == len(get_model(config.model.name).layer_names)


def test_deepdefense_configs_keep_augmentation_off():
    for module in map(load_config_module, ("cifar_deep", "cifar_standard", "mnist_4fc_standard")):
        assert module.get_config().data.augmentation == "none"
