"""Cluster data for policies that read it (rule ``context`` ConfigMaps and ``apiCall``, ``keys.secret`` and
``k8s://`` keys, ``namespaceSelector``): manifests shipped beside the policies, or a live Kubernetes API connection.
Everything a policy reads from the cluster goes through :class:`sigward.cluster.data.ClusterData`."""
