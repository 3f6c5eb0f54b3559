"""Real-broker test infrastructure (no mocks), all on 127.0.0.1.

* :mod:`tests.support.mosquitto`  -- ``MosquittoBroker`` subprocess wrapper
* :mod:`tests.support.certs`      -- ``make_pki`` throwaway CA / certificates
* :mod:`tests.support.proxy`      -- ``TcpProxy`` for network fault injection
* :mod:`tests.support.mqttclient` -- ``MqttTestClient``: bounded paho wrapper
* :mod:`tests.support.rtsp_server` -- ``RtspServer``: an RTSP/RTP-JPEG camera with stall/drop/corrupt faults
  (framing in :mod:`tests.support.rtsp_protocol`, RFC 2435 packets in :mod:`tests.support.rtp_jpeg`)

Fixtures built on these live in ``tests/conftest.py``.
"""
