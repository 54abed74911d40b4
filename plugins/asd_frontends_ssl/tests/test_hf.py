"""``hf_encoder`` on tiny random Hugging Face models saved to disk (HF_HUB_OFFLINE=1: no downloads)."""
import pytest
import torch

import asdcore
from asd_frontends_ssl.hf_features import AstFeatures, CpuFeatures, Wav2Vec2Features, WhisperFeatures, hf_features
from asd_frontends_ssl.lora import trainable_state

transformers = pytest.importorskip("transformers")
SECONDS = 0.6


@pytest.fixture(scope="module")
def wav2vec2(tmp_path_factory):
    """A two-layer Wav2Vec2Model with its feature extractor."""
    path = tmp_path_factory.mktemp("wav2vec2")
    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16),
        conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(config).save_pretrained(path)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True,
                                          return_attention_mask=False).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def ast(tmp_path_factory):
    """A one-layer Audio Spectrogram Transformer over 64 fbank frames, with its feature extractor."""
    path = tmp_path_factory.mktemp("ast")
    config = transformers.ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64, max_length=64, num_mel_bins=128)
    torch.manual_seed(0)
    transformers.ASTModel(config).save_pretrained(path)
    transformers.ASTFeatureExtractor(max_length=64, num_mel_bins=128).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    """A one-layer Whisper model over 1-s windows (100 mel frames), with its feature extractor."""
    path = tmp_path_factory.mktemp("whisper")
    config = transformers.WhisperConfig(
        vocab_size=100, num_mel_bins=80, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_source_positions=50,
        max_target_positions=16, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )
    torch.manual_seed(0)
    transformers.WhisperModel(config).save_pretrained(path)
    transformers.WhisperFeatureExtractor(chunk_length=1).save_pretrained(path)
    return str(path)


def create(registry, seed=0, sample_rate=16000, **params):
    torch.manual_seed(seed)
    return registry.create("frontends", "hf_encoder", params={"lora_rank": 4, "embedding_dim": 8, **params},
                           sample_rate=sample_rate, clip_samples=int(sample_rate * SECONDS))


def waves(batch=3, seed=0, sample_rate=16000):
    return 0.1 * torch.randn(batch, int(sample_rate * SECONDS), generator=torch.Generator().manual_seed(seed))


def test_lora_on_q_and_v_by_default_and_only_lora_and_head_train(registry, wav2vec2):
    frontend = create(registry, model=wav2vec2)
    assert frontend.spec == asdcore.FrontendSpec(embedding_dim=8, needs_training=True)
    trainable = [n for n, p in frontend.model.named_parameters() if p.requires_grad]
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable if ".lora_" in n} == {"q_proj", "v_proj"}
    assert all(".lora_" in n or n.startswith("projection_net.") for n in trainable)
    assert frontend.extract(waves()).embedding.shape == (3, 8)


def test_training_leaves_the_model_intact_and_round_trips(registry, wav2vec2, tmp_path, train_data):
    frontend = create(registry, model=wav2vec2, pooling="attentive_stats")
    before = {n: p.detach().clone() for n, p in frontend.model.named_parameters()}
    frontend.fit(train_data(tmp_path / "work", epochs=1))  # two steps: B moves in the first, A from the second
    after = dict(frontend.model.named_parameters())
    assert all(torch.equal(after[n], v) != after[n].requires_grad for n, v in before.items())
    trained = set(trainable_state(frontend.model))
    assert set(frontend.checkpoint_state()) == trained  # what training checkpoints hold
    frontend.save(tmp_path / "model")
    assert set(torch.load(tmp_path / "model" / "model.pt", weights_only=True)) == trained
    restored = create(registry, seed=1, model=wav2vec2, pooling="attentive_stats")
    restored.load(tmp_path / "model")
    x = waves()
    assert torch.equal(restored.extract(x).embedding, frontend.extract(x).embedding)


def test_frozen_mode_pools_the_hidden_states(registry, wav2vec2):
    frontend = create(registry, model=wav2vec2, trainable=False)
    assert frontend.spec == asdcore.FrontendSpec(embedding_dim=32, needs_training=False)
    x = waves()
    model = transformers.AutoModel.from_pretrained(wav2vec2).eval()
    extractor = transformers.AutoFeatureExtractor.from_pretrained(wav2vec2)
    inputs = extractor(list(x.numpy()), sampling_rate=16000, return_tensors="pt").input_values
    with torch.no_grad():
        expected = model(inputs).last_hidden_state.mean(1)
    torch.testing.assert_close(frontend.extract(x).embedding, expected)
    assert not any(p.requires_grad for p in frontend.model.parameters())


def test_ast_with_cls_pooling(registry, ast):
    frontend = create(registry, model=ast, pooling="cls")
    assert frontend.extract(waves()).embedding.shape == (3, 8)
    raw = create(registry, model=ast, pooling="cls", trainable=False)
    assert raw.extract(waves()).embedding.shape == (3, 32)


def test_other_sample_rates_are_resampled_for_the_feature_extractor(registry, wav2vec2):
    frontend = create(registry, sample_rate=8000, model=wav2vec2, trainable=False)
    at_16k = create(registry, model=wav2vec2, trainable=False)
    x = waves(sample_rate=8000)
    import torchaudio

    torch.testing.assert_close(frontend.extract(x).embedding,
                               at_16k.extract(torchaudio.functional.resample(x, 8000, 16000)).embedding)


def test_the_trained_encoder_runs_end_to_end_on_the_toy_dataset(wav2vec2, tmp_path):
    """Through the engine: 8-kHz toy clips resampled, LoRA and head trained, only they saved, clips scored."""
    config = {"name": "hf", "dataset": {"name": "toy", "root": str(tmp_path / "data"), "generate": True},
              "frontend": {"name": "hf_encoder", "params": {"model": wav2vec2, "lora_rank": 4, "embedding_dim": 8},
                           "loss": {"name": "toy"}, "training": {"epochs": 1, "batch_size": 8, "num_workers": 0}},
              "backends": [{"name": "toy"}], "evaluation": {"plots": False}, "output": str(tmp_path / "out"),
              "seeds": [0], "device": "cpu"}
    seed = asdcore.Pipeline.create(asdcore.load_config(config), progress=False).run() / "seed0"
    assert "toy,all,dev,official," in (seed / "summary.csv").read_text()
    for machine in ("alpha", "beta"):
        scores = seed / machine / "toy" / f"anomaly_score_{machine}_section_00_test.csv"
        assert len(scores.read_text().splitlines()) == 8
    assert len((seed / "frontend" / "shared" / "train_log.csv").read_text().splitlines()) == 2
    saved = torch.load(seed / "frontend" / "shared" / "model" / "model.pt", weights_only=True)
    assert any(".lora_A." in k for k in saved) and any(k.startswith("projection_net.") for k in saved)
    assert all(".lora_" in k or k.startswith("projection_net.") for k in saved)


@pytest.mark.parametrize("params, message", [
    ({"lora_targets": ["query"]}, "no Linear layer named 'query'.*k_proj, v_proj, q_proj"),
    ({"trainable": False, "pooling": "attentive_stats"}, "trainable: false"),
    ({"model": "/nonexistent/model", "local_files_only": True}, "cannot load Hugging Face model '/nonexistent/model'"),
])
def test_bad_params_are_config_errors(registry, wav2vec2, params, message):
    with pytest.raises(asdcore.ConfigError, match=message):
        create(registry, **{"model": wav2vec2, **params})


EXTRACTORS = {
    "wav2vec2": lambda: transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False),
    "wav2vec2_raw": lambda: transformers.Wav2Vec2FeatureExtractor(do_normalize=False),
    "ast_truncated": lambda: transformers.ASTFeatureExtractor(max_length=64, num_mel_bins=128),
    "ast_padded": lambda: transformers.ASTFeatureExtractor(max_length=128, num_mel_bins=64, do_normalize=False),
    "whisper": lambda: transformers.WhisperFeatureExtractor(),
    "whisper_truncated": lambda: transformers.WhisperFeatureExtractor(chunk_length=1, feature_size=128),
    "whisper_left": lambda: transformers.WhisperFeatureExtractor(padding_side="left", padding_value=0.01),
}


@pytest.mark.parametrize("kind", EXTRACTORS)
@pytest.mark.parametrize("samples", [16000, 24001])
def test_device_features_equal_the_extractors(kind, samples):
    """Equal to the Hugging Face extractor within 1e-5: numpy's pairwise float32 sums for the clip
    mean and variance differ from torch's reductions in the last bits, and on other devices the
    float32 FFT and mel products run other algorithms (on the CPU fbank and STFT agree bit for bit)."""
    extractor = EXTRACTORS[kind]()
    name = extractor.model_input_names[0]
    features = hf_features(extractor, name)
    assert type(features) is {"wav2vec2": Wav2Vec2Features, "ast": AstFeatures,
                              "whisper": WhisperFeatures}[kind.split("_")[0]]
    x = 0.1 * torch.randn(3, samples, generator=torch.Generator().manual_seed(samples)) + 0.02
    expected = extractor(list(x.numpy()), sampling_rate=16000, return_tensors="pt")[name]
    out = features(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(features(x), out)


def test_other_extractors_run_on_the_cpu():
    class Custom(transformers.Wav2Vec2FeatureExtractor):
        pass

    extractor = Custom(do_normalize=True)
    features = hf_features(extractor, "input_values")
    assert isinstance(features, CpuFeatures)
    x = waves()
    torch.testing.assert_close(features(x), extractor(list(x.numpy()), sampling_rate=16000,
                                                      return_tensors="pt").input_values, rtol=0, atol=0)


@pytest.mark.parametrize("model", ["ast", "whisper"])
def test_frozen_ast_and_whisper_equal_the_model_on_extractor_features(registry, request, model):
    path = request.getfixturevalue(model)
    frontend = create(registry, model=path, trainable=False, pooling="mean")
    network = transformers.AutoModel.from_pretrained(path).eval()
    network = network.get_encoder() if model == "whisper" else network
    extractor = transformers.AutoFeatureExtractor.from_pretrained(path)
    x = waves()
    inputs = extractor(list(x.numpy()), sampling_rate=16000, return_tensors="pt")[network.main_input_name]
    with torch.no_grad():
        expected = network(inputs).last_hidden_state.mean(1)
    torch.testing.assert_close(frontend.extract(x).embedding, expected)
