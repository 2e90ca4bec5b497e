"""The Open Inference Protocol v2: the wire codec (``protocol``), our server
(``mlperf-pilot serve``) and the client the ``oip`` SUT kind uses."""
