"""Training jobs: SageMaker's training-job operations (``service``), the runner that moves jobs through their statuses
(``runner``), and where a job's hosts run (``launcher`` on this machine, ``ray_cluster`` on a Ray cluster)."""
