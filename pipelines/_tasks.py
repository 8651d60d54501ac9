"""How pipeline tasks are placed on the cluster: resources, GPUs, volumes, secrets (from settings).

None of this affects kfp.local runs: kfp-kubernetes settings compile into the YAML only.
"""

from __future__ import annotations

from kfp import kubernetes
from kfp.dsl import PipelineTask

from faco import images
from faco.artifacts import KFP_RUN_ID_ENV
from faco.evaluation.sandbox import MODE_ENV as SANDBOX_MODE_ENV
from faco.k8s.settings import POD_SANDBOX_MODE, UNTRUSTED_CODE_LABEL, ClusterSettings, SecretRef
from faco.kfp_glue import ENV_WORK_ROOT


def secrets(task: PipelineTask, *refs: SecretRef) -> PipelineTask:
    """Expose Secrets as env vars, by fixed name: a Secret name cannot be a pipeline parameter on
    KFP v2 backends (https://github.com/kubeflow/pipelines/issues/10914,
    https://github.com/kubeflow/pipelines/issues/9418). Optional, so a missing Secret is no error."""
    for ref in refs:
        kubernetes.use_secret_as_env(task, secret_name=ref.name, secret_key_to_env=dict(ref.keys),
                                     optional=True)
    return task


def restricted(task: PipelineTask) -> PipelineTask:
    """Run the task's container as the images' non-root user (UID/GID 10001, runAsNonRoot), with the
    KFP run id in `FACO_KFP_RUN_ID` (every artifact records it as `meta.kfp_run_id`).

    kfp-kubernetes 2.17 sets only these identity fields, on the container's securityContext
    (kubeflow/pipelines#12832, #12859); seccomp RuntimeDefault, no privilege escalation and dropped
    capabilities are not settable from the SDK: a backend with kubeflow/pipelines#12782 applies them
    to every task itself. Pod-level fields (fsGroup) are not exposed at all (docs/kubeflow.md).
    The run id comes from the pod's `pipeline/runid` label (the backend's launcher reads the same
    label), through the downward API: an input would change every run's cache key.
    """
    kubernetes.use_field_path_as_env(task, env_name=KFP_RUN_ID_ENV, field_path="metadata.labels['pipeline/runid']")
    return kubernetes.set_security_context(task, run_as_user=images.USER_ID, run_as_group=images.GROUP_ID,
                                           run_as_non_root=True)


def light(task: PipelineTask, s: ClusterSettings) -> PipelineTask:
    """A CPU stage."""
    return restricted(task.set_cpu_request(s.light_cpu).set_memory_request(s.light_memory))


def fetcher(task: PipelineTask, s: ClusterSettings) -> PipelineTask:
    """`prefetch_benchmarks`: light, with network and the hub token (gated datasets), no model."""
    return secrets(light(task, s), s.secrets.huggingface)


def generator(task: PipelineTask, s: ClusterSettings) -> PipelineTask:
    """`generate`: light, the OpenAI key, and the checkpoint PVC, where its chain cache lives
    (`FACO_CACHE_DIR`), so reruns, sweep cells and seeds reuse every chain already paid for; the S3
    credentials for a cache in S3 (`generate.cache_path: s3://...`)."""
    return secrets(_checkpoints(light(task, s), s), s.secrets.openai, s.secrets.s3)


def _on_gpu_nodes(task: PipelineTask, s: ClusterSettings, gpus: int) -> PipelineTask:
    task.set_accelerator_type(s.accelerator_type).set_accelerator_limit(gpus)
    for key, value in s.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for t in s.tolerations:
        kubernetes.add_toleration(task, key=t.key, operator=t.operator, value=t.value, effect=t.effect)
    return task


def _checkpoints(task: PipelineTask, s: ClusterSettings) -> PipelineTask:
    kubernetes.mount_pvc(task, pvc_name=s.checkpoint_pvc, mount_path=s.checkpoint_mount)
    return task.set_env_variable("FACO_CACHE_DIR", f"{s.checkpoint_mount}/cache")


def retried(task: PipelineTask) -> PipelineTask:
    """Retry a failed or preempted task: 3 times, after 60 s, 120 s, 240 s (within 2 h)."""
    return task.set_retry(num_retries=3, backoff_duration="60s", backoff_factor=2.0, backoff_max_duration="7200s")


def trainer(task: PipelineTask, s: ClusterSettings) -> PipelineTask:
    """A single-node training task: all GPUs of one node (torchrun, one process per GPU), /dev/shm
    for NCCL, the checkpoint PVC holding its resumable work dir (`FACO_WORK_ROOT`), and retries."""
    _on_gpu_nodes(task, s, s.gpus_per_node)
    task.set_cpu_request(s.train_cpu).set_memory_request(s.train_memory)
    kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory",
                               size_limit=s.shm_size)
    _checkpoints(task, s)
    task.set_env_variable(ENV_WORK_ROOT, f"{s.checkpoint_mount}/work")
    retried(task)
    return secrets(restricted(task), s.secrets.huggingface, s.secrets.s3)


def evaluator(task: PipelineTask, s: ClusterSettings, *, untrusted_code: bool = False) -> PipelineTask:
    """An evaluation task: `eval_gpus` GPUs (0: CPU), the shared cache on the PVC.

    `untrusted_code`: the task (`evaluate_untrusted`) runs model-written code, so its pod carries
    the label that the `isolate-untrusted-code` NetworkPolicies select (no egress beyond what
    KFP's own launcher needs) and gets no Secrets; its benchmark data comes prefetched. Its sandbox
    mode is `auto`: a pod's RuntimeDefault seccomp profile forbids the user namespaces of the strict
    mode, so there the weak mode runs (Landlock, seccomp, limits; docs/evaluation.md).
    """
    if s.eval_gpus:
        _on_gpu_nodes(task, s, s.eval_gpus)
    task.set_cpu_request(s.eval_cpu).set_memory_request(s.eval_memory)
    _checkpoints(task, s)
    retried(restricted(task))
    if untrusted_code:
        kubernetes.add_pod_label(task, label_key=UNTRUSTED_CODE_LABEL, label_value="true")
        return task.set_env_variable(SANDBOX_MODE_ENV, POD_SANDBOX_MODE)
    return secrets(task, s.secrets.huggingface, s.secrets.s3)


def judger(task: PipelineTask, s: ClusterSettings) -> PipelineTask:
    """`judge`: samples answers from a model with the evaluate task's GPUs and resources, and scores
    them with the judge (the OpenAI key, or the hub token for a hub judge model); the judge's reply
    cache (`$FACO_CACHE_DIR/judge.sqlite`) on the PVC, so a retry pays for no reply twice."""
    if s.eval_gpus:
        _on_gpu_nodes(task, s, s.eval_gpus)
    task.set_cpu_request(s.eval_cpu).set_memory_request(s.eval_memory)
    _checkpoints(task, s)
    retried(restricted(task))
    return secrets(task, s.secrets.openai, s.secrets.huggingface)


def saver(task: PipelineTask, s: ClusterSettings) -> PipelineTask:
    """`base_model`: loads the configured base model (the hub token) and saves it, on CPU with the
    evaluate task's memory (a 13B model in memory); retried."""
    task.set_cpu_request(s.eval_cpu).set_memory_request(s.eval_memory)
    retried(restricted(task))
    return secrets(task, s.secrets.huggingface, s.secrets.s3)


def launcher(task: PipelineTask, s: ClusterSettings) -> PipelineTask:
    """The multi-node launcher: light, but it stages data on the PVC the training pods mount."""
    light(task, s)
    kubernetes.mount_pvc(task, pvc_name=s.checkpoint_pvc, mount_path=s.checkpoint_mount)
    return task
