"""Transport: generic request/response and streaming RPC over asyncio TCP, on the frames of ``host.net.codec``.

Transport only: message types and their meaning belong to the user (``host.serve.wire`` for retrieval,
``llm_node`` for tokens).  Byte-level spec: docs/protocol.md.

Server::

    server = RpcServer(max_frame=64 << 20, read_timeout=30.0)
    server.register(16, handler)                 # async def handler(fields: dict) -> dict
    server.register(17, gen_handler, stream=True) # async generator: yields dicts, one frame each, then END
    host, port = await server.start("127.0.0.1", 0)
    await server.serve_forever()                 # or: await server.close()

A handler receives the request's field map (arrays are read-only views) and returns the response field
map.  Raising ``RpcError(code, msg)`` sends that error frame; ``AnoleError``, ``ValueError``,
``TypeError`` or ``KeyError`` send ``E_BAD_REQUEST`` (bad input); anything else ``E_INTERNAL``.  A
stream handler that raises mid-stream ends the stream with the error frame; when the peer is gone,
its next ``yield`` is not resumed (the generator is closed).  A T_CANCEL frame (the client's stream
or call gave up) cancels the handler of its request id.  Requests run as concurrent tasks, so one connection
multiplexes many requests by request id (at most ``max_inflight`` each); responses may come back in any
order.  Malformed frames get an error frame; the connection closes only when the byte stream cannot be
resynchronised (bad magic, bad version, truncated frame, read timeout).

Client (async; one connection, many concurrent calls)::

    client = await RpcClient.connect("127.0.0.1", port, timeout=30.0)
    reply = await client.call(16, {"x": np.arange(4)})     # dict, or raises RemoteError / RpcError
    async for item in client.stream(17, {...}): ...        # items until the END frame
    await client.close()

``SyncClient`` wraps the same API for scripts and the CLI (its own event loop, not thread-safe).

Modules: ``codec`` (bytes of a frame), ``frames`` (error codes, ``RpcError``, reading and writing one frame),
``server`` (``RpcServer``), ``client`` (``RpcClient``, ``SyncClient``). This is the only part of ``host``
besides ``host.spec`` that ``llm_node`` imports.
"""
