"""The audit's computation: from a loaded run to the audit dictionary (see :mod:`datakit.audit.run`)."""
from __future__ import annotations

import datetime as _dt
import time
from typing import TYPE_CHECKING

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from datakit import __version__
from datakit.audit import amplification, calibration, links, memorisation, metrics
from datakit.audit.cas import classification_accuracy_score
from datakit.audit.judge import JudgeConfig, judge_for_manifest, resolve_device, split_real
from datakit.audit.per_class import CollapseRule, class_report, label_fidelity
from datakit.errors import DatakitError
from datakit.manifest import pixel_sha256, read_manifest

if TYPE_CHECKING:
    from datakit.audit.run import AuditConfig, RunInputs


def _metric(value, floor, ci, better: str, ideal: float) -> dict:
    return {"value": value, "floor": floor, "ci_low": ci[0], "ci_high": ci[1],
            "better": better, "ideal": ideal}


def _sample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= cap else np.sort(rng.choice(n, cap, replace=False))


def _predicted_run_class(class_logits: np.ndarray, judge_classes: list[str],
                         run_classes: list[str], judge_manifest) -> np.ndarray:
    """The judge's reading of each sample as a label of the run's vocabulary.

    A judge trained on another manifest (``AuditConfig.judge_manifest``) may know more
    classes, or order them differently: each sample is read as the most likely of the
    run's own classes, matched by class name.
    """
    if list(judge_classes) == list(run_classes):
        return class_logits.argmax(1).astype(np.int64)
    missing = [c for c in run_classes if c not in judge_classes]
    if missing:
        raise DatakitError(
            f"The judge manifest {judge_manifest.path} has no class {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''} of the run's vocabulary; choose a judge "
            "manifest that holds every class of the runs it measures.")
    columns = [list(judge_classes).index(c) for c in run_classes]
    return class_logits[:, columns].argmax(1).astype(np.int64)


def build_audit(run: "RunInputs", cfg: "AuditConfig") -> dict:
    """Compute every section of audit.json for ``run`` under settings ``cfg``."""
    # numpy's BLAS only sees small matrices here (D×D covariances, per-class sets); its
    # worker threads cost far more than they give, badly so on a shared machine. The large
    # products (k-NN blocks, KID kernels, the judge) run in torch on the chosen device.
    threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            return _build_audit(run, cfg)
    finally:
        torch.set_num_threads(threads)


def _build_audit(run: "RunInputs", cfg: "AuditConfig") -> dict:
    timing: dict[str, float] = {}
    warnings: list[str] = []
    rng = np.random.default_rng(cfg.seed)
    m = run.manifest
    device = resolve_device(cfg.device)
    judge_cfg = JudgeConfig(**{**cfg.judge.__dict__, "device": str(device), "seed": cfg.judge.seed})

    # 1) the judge (cached by manifest checksum) and the real train / held-out split
    t = time.perf_counter()
    judge_m = read_manifest(cfg.judge_manifest) if cfg.judge_manifest else m
    judge = judge_for_manifest(judge_m, judge_cfg, use_cache=cfg.use_cache)
    timing["judge_s"] = time.perf_counter() - t
    split = split_real(m, judge_cfg.held_out_share, judge_cfg.seed)
    table = m.table
    rows, labels = table["row"].to_numpy(), table["label"].to_numpy(np.int64)
    classes = m.vocabulary
    ref_pos = split.train_rows[_sample(len(split.train_rows), cfg.max_reference, rng)]
    held_pos = split.held_rows
    gen_idx = _sample(len(run.images), cfg.max_generated, rng)
    gen_images, gen_labels = run.images[gen_idx], run.labels[gen_idx]

    # 2) features of the three sets
    t = time.perf_counter()
    ref = judge.embed(m.images(rows[ref_pos]))
    held = judge.embed(m.images(rows[held_pos]))
    gen = judge.embed(gen_images)
    timing["embed_s"] = time.perf_counter() - t
    ref_y, held_y = labels[ref_pos], labels[held_pos]
    gen_pred = _predicted_run_class(gen.class_logits, judge.classes, classes, judge_m)
    assigned = gen_labels if run.conditional else gen_pred

    # 3) whole-set metrics, each with its real-vs-real floor (held-out at the same sample size)
    t = time.perf_counter()
    k, dev, ce = cfg.k, device, cfg.chunk_elems
    floor_idx = _sample(len(held), len(gen), rng)
    held_f = held.features[floor_idx]
    ref_nn = metrics.neighbour_distances(ref.features, k, device=dev, chunk_elems=ce)
    ref_radii = ref_nn[:, k - 1]
    rel = metrics.neighbour_relations(ref.features, gen.features, k=k, real_radii=ref_radii,
                                      device=dev, chunk_elems=ce)
    rel_floor = metrics.neighbour_relations(ref.features, held_f, k=k, real_radii=ref_radii,
                                            device=dev, chunk_elems=ce)
    q, q_floor = metrics.prdc_from_relations(rel), metrics.prdc_from_relations(rel_floor)
    kid_args = dict(subset_size=cfg.kid_subset_size, subsets=cfg.kid_subsets, seed=cfg.seed, device=dev)
    kid = metrics.kid(ref.features, gen.features, **kid_args)
    kid_floor = metrics.kid(ref.features, held_f, **kid_args)
    # FD, KID, recall and coverage move with sample size: the generated set is also scored
    # at the floor's size (value_at_floor_size), so value and floor compare like with like.
    gen_m = gen.features[_sample(len(gen), len(held_f), rng)]
    q_m = metrics.prdc(ref.features, gen_m, k=k, real_radii=ref_radii, device=dev, chunk_elems=ce) \
        if len(gen_m) > k else {}
    matched = {"fd": metrics.fd(ref.features, gen_m),
               "kid": metrics.kid(ref.features, gen_m, **kid_args)["value"], **q_m}
    summary = {
        "fd": _metric(metrics.fd(ref.features, gen.features), metrics.fd(ref.features, held_f),
                      calibration.fd_interval(ref.features, gen.features, cfg.bootstrap, cfg.seed),
                      "lower", 0.0),
        "kid": _metric(kid["value"], kid_floor["value"], (kid["p025"], kid["p975"]), "lower", 0.0),
        "precision": _metric(q["precision"], q_floor["precision"],
                             calibration.mean_interval(rel.fake_in_real_balls > 0, seed=cfg.seed),
                             "higher", 1.0),
        "recall": _metric(q["recall"], q_floor["recall"],
                          calibration.mean_interval(rel.real_in_fake_ball, seed=cfg.seed), "higher", 1.0),
        "density": _metric(q["density"], q_floor["density"],
                           calibration.mean_interval(rel.fake_in_real_balls, seed=cfg.seed, scale=k),
                           "higher", 1.0),
        "coverage": _metric(q["coverage"], q_floor["coverage"],
                            calibration.mean_interval(rel.real_nn_fake_distance <= rel.real_radii,
                                                      seed=cfg.seed), "higher", 1.0),
    }
    # ci_low/ci_high of fd are its spread at this sample size; fd_infinity is the
    # bias-corrected population estimate (Chong & Forsyth 2020) with its own interval.
    # (20 bootstrap replicates at most: each refits 8 subset FDs.)
    summary["fd"]["fd_infinity"] = calibration.fd_infinity(ref.features, gen.features,
                                                           min(cfg.bootstrap, 20), cfg.seed)
    if kid["subset_shrunk"]:
        warnings.append(f"KID used subsets of {kid['subset_size']} images, fewer than the "
                        f"{kid['requested_subset_size']} asked for (a set is that small); its "
                        "interval is wider and not comparable with KID at the full subset size.")
    judge_acc = judge.info.get("held_out_accuracy")
    if run.conditional:
        ok = (gen_pred == gen_labels).astype(float)
        summary["label_fidelity"] = _metric(float(ok.mean()), judge_acc,
                                            calibration.mean_interval(ok, seed=cfg.seed), "higher", 1.0)
    for name, entry in summary.items():
        # label fidelity is a plain share: sample size does not bias it
        entry["value_at_floor_size"] = entry["value"] if name == "label_fidelity" else matched.get(name)
        entry["floor_size"] = int(len(held_f))
    timing["summary_s"] = time.perf_counter() - t

    # 4) memorisation: nearest training image of each generated sample
    t = time.perf_counter()
    train_nn = ref_nn[:, 0]  # each training image's nearest other training image
    flags, threshold = memorisation.flag_close_samples(rel.fake_nn_distance, train_nn,
                                                       cfg.memorisation_quantile)
    floor_flags, _ = memorisation.flag_close_samples(rel_floor.fake_nn_distance, train_nn,
                                                     cfg.memorisation_quantile)
    train_sha = set(table["sha256"].to_numpy()[split.train_rows])
    exact = np.array([h in train_sha for h in pixel_sha256(gen_images)])
    ref_ids = table["id"].to_numpy()[ref_pos].tolist()
    mem = {
        "threshold": threshold, "quantile": cfg.memorisation_quantile,
        "flagged_count": int(flags.sum()), "flagged_share": float(flags.mean()),
        "flagged_share_floor": float(floor_flags.mean()),
        "exact_copies": int(exact.sum()), "exact_copy_share": float(exact.mean()),
        "worst": memorisation.worst_examples(rel.fake_nn_distance, rel.fake_nn_index, ref_ids, flags),
        "ct": memorisation.data_copying_ct(ref.features, held.features, gen.features,
                                           cells=cfg.ct_cells_whole, seed=cfg.seed),
        "per_class": [],
    }
    gen_index_original = gen_idx
    for w in mem["worst"]:
        w["generated_index"] = int(gen_index_original[w["generated_index"]])
    timing["memorisation_s"] = time.perf_counter() - t

    # 5) per class
    t = time.perf_counter()
    rule = CollapseRule(cfg.collapse_max_diversity_ratio, cfg.collapse_max_close_pair_share)
    train_counts = np.bincount(labels[split.train_rows], minlength=len(classes))
    gen_share = amplification.shares(assigned, len(classes))
    train_share = train_counts / max(1, train_counts.sum())
    held_acc = judge.info.get("held_out_accuracy_per_class", {})
    per_class = []
    for lab, name in enumerate(classes):
        r_m, h_m, g_m = ref_y == lab, held_y == lab, assigned == lab
        if not r_m.any():
            warnings.append(f"Class {name} has no training images in {m.path.name}; it is left out "
                            "of the per-class audit.")
            continue
        c = class_report(name, lab, ref.features[r_m], held.features[h_m], gen.features[g_m],
                         k=k, rule=rule, seed=cfg.seed)
        c["train_count"] = int(train_counts[lab])
        c["train_share"] = float(train_share[lab])
        c["generated_share"] = float(gen_share[lab])
        c["generated_share_ratio"] = float(gen_share[lab] / train_share[lab]) if train_share[lab] else None
        c["label_fidelity"] = label_fidelity(gen_labels, gen_pred, lab) if run.conditional else None
        c["label_fidelity_floor"] = held_acc.get(name)
        c["memorised_share"] = float(flags[g_m].mean()) if g_m.any() else None
        ct = memorisation.data_copying_ct(ref.features[r_m], held.features[h_m], gen.features[g_m],
                                          cells=cfg.ct_cells, seed=cfg.seed)
        c["ct"] = ct["value"]
        mem["per_class"].append({"class_name": name, "label": lab, "ct": ct["value"],
                                 "ct_cells_used": ct["cells_used"],
                                 "flagged_count": int(flags[g_m].sum()),
                                 "flagged_share": c["memorised_share"]})
        per_class.append(c)
    timing["per_class_s"] = time.perf_counter() - t

    # 6) bias amplification: classes, then domains when the manifest mixes them
    domain_names = judge.domains
    amp = {"classes": amplification.share_table(
        classes, labels[split.train_rows], assigned,
        "conditioning labels" if run.conditional else "judge predictions",
        judged_codes=gen_pred if run.conditional else None), "domains": None}
    gen_domain_share = None
    run_domains = set(table["domain"].astype(str))
    if len(domain_names) > 1 and gen.domain_logits is not None and run_domains <= set(domain_names):
        dom_codes = np.searchsorted(domain_names, table["domain"].astype(str).to_numpy())
        amp["domains"] = amplification.share_table(domain_names, dom_codes[split.train_rows],
                                                   gen.predicted_domain, "judge predictions")
        gen_domain_share = {r["name"]: r["generated_share"] for r in amp["domains"]["rows"]}

    # 7) classification accuracy score (timed on its own)
    t = time.perf_counter()
    cas = None
    if cfg.cas:
        cas_cfg = JudgeConfig(**{**judge_cfg.__dict__, "epochs": cfg.cas_epochs})
        cas = classification_accuracy_score(
            gen_images, assigned, m.images(rows[held_pos]), held_y, classes, config=cas_cfg,
            label_source="conditioning labels" if run.conditional else "judge predictions")
        cas["floor"] = judge_acc
        for c in per_class:
            c["cas_accuracy"] = cas["per_class"].get(c["class_name"])
    timing["cas_s"] = time.perf_counter() - t

    # 8) composition links
    t = time.perf_counter()
    link = {"per_class_vs_train_count": links.metric_vs_train_count(per_class), "parts": []}
    for column in ("subset", "domain"):
        parts = table[column].astype(str).to_numpy()[ref_pos]
        if len(set(parts)) > 1:
            link["parts"] += links.metrics_per_part(
                parts, ref.features, gen.features, column=column, k=k, device=dev,
                generated_share=gen_domain_share if column == "domain" else None)
    timing["links_s"] = time.perf_counter() - t

    # 9) warnings: can the numbers be trusted?
    if judge_acc is not None and judge_acc < judge_cfg.min_accuracy:
        folded = judge.info.get("held_out_accuracy_ignoring_case")
        case = f" ({folded:.1%} ignoring letter case)" if folded is not None else ""
        warnings.insert(0, f"The judge reads only {judge_acc:.1%} of held-out real images correctly{case}, "
                        f"below {judge_cfg.min_accuracy:.0%}; its class readings and features are "
                        "too weak to trust, so treat every metric here as rough.")
    if "carve" in split.how:
        warnings.append(f"{m.path.name} has no \"test\" split; held-out real images are {split.how}.")
    if len(gen) < cfg.min_density_samples:
        warnings.append(f"Only {len(gen)} generated samples: density, coverage and KID are noisy "
                        f"below about {cfg.min_density_samples}; generate more for firmer numbers.")
    if len(ref) < judge.net.feature_dim:
        warnings.append(f"The training reference has {len(ref)} images, fewer than the "
                        f"{judge.net.feature_dim} feature dimensions: the Fréchet distance is unreliable.")
    warnings += calibration.small_sample_warnings(per_class, judge.net.feature_dim, k,
                                                  cfg.min_density_samples)
    collapsed = [c["class_name"] for c in per_class if c["collapsed"]]
    if collapsed:
        warnings.append(f"Mode collapse in {len(collapsed)} class(es): {calibration._names(collapsed)}.")
    if mem["exact_copies"]:
        warnings.append(f"{mem['exact_copies']} generated samples are exact pixel copies of training images.")

    return {
        "summary": summary,
        "per_class": per_class,
        "amplification": amp,
        "memorisation": mem,
        "cas": cas,
        "links": link,
        "warnings": warnings,
        "judge": {**judge.info, "trusted": judge_acc is None or judge_acc >= judge_cfg.min_accuracy,
                  "classes": judge.classes, "domains": judge.domains,
                  "feature_dim": judge.net.feature_dim, "min_accuracy": judge_cfg.min_accuracy,
                  "manifest": str(judge_m.path.resolve()), "manifest_checksum": judge_m.checksum,
                  "shared": judge_m is not m},
        "config": cfg.to_dict(),
        "run": {"run_dir": str(run.run_dir.resolve()), "model": run.config.get("model"),
                "conditional": run.conditional, "manifest": str(m.path.resolve()),
                "manifest_checksum": m.checksum, "generated_count": int(len(run.images)),
                "audited_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "datakit_version": __version__},
        "samples": {"reference": int(len(ref)), "held_out": int(len(held)),
                    "floor": int(len(held_f)), "generated": int(len(gen)),
                    "held_out_source": split.how},
        "timing": timing,
    }
