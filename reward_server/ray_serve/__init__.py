"""The reward service as a Ray Serve application (``configs/ray-serve.yaml``, docs/ray.md).

Two deployments, scaled apart:

* ``RewardIngress`` (``ingress``): the FastAPI app of ``reward_server.app.create_app``, the
  same object ``python -m reward_server`` serves with uvicorn, as Serve's HTTP ingress; one
  more method, ``handle_request``, runs a request through that same app for trainers that
  call it with a ``DeploymentHandle`` instead of HTTP (``clients.ray_handle``);
* ``RewardJudge`` (``judge_server``): the judge's model (``REWARD_JUDGE_BACKEND``
  ``transformers`` or ``vllm``) on its own replicas, with its own ``ray_actor_options``
  (GPUs). The ingress's judge engine (prompts, micro-batching, parsing, identity) is
  unchanged; only its backend (``judge_backend.RayJudgeBackend``) sends the batches to this
  deployment.

``application.build_app`` is the application builder the config's ``import_path`` names;
``proxy.middlewares`` makes Serve's proxy answer 503 + ``Retry-After`` when a replica died
under a request. Ray itself is imported only by these modules, never by the service's others.
"""
