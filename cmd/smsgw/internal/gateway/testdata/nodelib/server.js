// An LwM2M server from Telefonica's lwm2m-node-lib (npm), driven by the Go
// test TestProxyAgainstNodeLib: events and answers are JSON lines on stdout,
// commands JSON lines on stdin ({"id":1,"op":"read","ep":"x","path":"/3/0/2"}).
// Usage: node server.js PORT (a real port: the library sends its requests
// through its own CoAP proxy at 127.0.0.1:PORT)
'use strict';
const lwm2m = require('lwm2m-node-lib').server;
const readline = require('readline');

const port = Number(process.argv[2]);
function out(o) { process.stdout.write(JSON.stringify(o) + '\n'); }

const config = {
    port: port,
    lifetimeCheckInterval: 1000,
    udpWindow: 100,
    defaultType: 'Device',
    logLevel: 'FATAL',
    ipProtocol: 'udp4',
    serverProtocol: 'udp4',
    formats: [
        { name: 'application-vnd-oma-lwm2m/text', value: 1541 },
        { name: 'application-vnd-oma-lwm2m/tlv', value: 1542 },
        { name: 'application-vnd-oma-lwm2m/json', value: 1543 },
        { name: 'application-vnd-oma-lwm2m/opaque', value: 1544 }
    ],
    writeFormat: 'text/plain',
    defaultAcceptFormat: 'text/plain'
};

function split(p) {
    const s = p.split('/').filter((x) => x !== '');
    return { obj: s[0], inst: s[1], res: s[2] };
}

function withDevice(ep, cb) {
    lwm2m.getDevice(ep, (err, dev) => {
        if (err || !dev) { cb(err || new Error('no device ' + ep)); return; }
        cb(null, dev);
    });
}

function answer(id) {
    return (err, value) => {
        if (err) { out({ id: id, ok: false, error: String(err.name || err.message || err) + (err.code ? ' ' + err.code : '') }); return; }
        out({ id: id, ok: true, value: value === undefined ? null : String(value) });
    };
}

function run(cmd) {
    const p = split(cmd.path || '');
    withDevice(cmd.ep, (err, dev) => {
        if (err) { answer(cmd.id)(err); return; }
        switch (cmd.op) {
        case 'device':
            out({ id: cmd.id, ok: true, value: JSON.stringify({ id: dev.id, name: dev.name, address: dev.address, port: dev.port, lifetime: dev.lifetime }) });
            break;
        case 'read':
            lwm2m.read(dev.id, p.obj, p.inst, p.res, answer(cmd.id));
            break;
        case 'write':
            lwm2m.write(dev.id, p.obj, p.inst, p.res, cmd.value, answer(cmd.id));
            break;
        case 'execute':
            lwm2m.execute(dev.id, p.obj, p.inst, p.res, cmd.value || '', answer(cmd.id));
            break;
        case 'discover':
            if (p.res !== undefined) lwm2m.discover(dev.id, p.obj, p.inst, p.res, answer(cmd.id));
            else lwm2m.discover(dev.id, p.obj, p.inst, answer(cmd.id));
            break;
        case 'observe':
            lwm2m.observe(dev.id, p.obj, p.inst, p.res, (value, o, i, r) => {
                out({ event: 'notify', ep: cmd.ep, path: '/' + o + '/' + i + '/' + r, value: String(value) });
            }, answer(cmd.id));
            break;
        default:
            out({ id: cmd.id, ok: false, error: 'unknown op ' + cmd.op });
        }
    });
}

lwm2m.start(config, (err, info) => {
    if (err) { out({ event: 'error', error: String(err) }); process.exit(1); }
    lwm2m.setHandler(info, 'registration', (ep, lt, version, binding, payload, cb) => {
        out({ event: 'registration', ep: ep, lifetime: lt, version: version, binding: binding, payload: payload });
        cb();
    });
    lwm2m.setHandler(info, 'unregistration', (device, cb) => {
        out({ event: 'unregistration', ep: device && device.name ? device.name : String(device) });
        cb();
    });
    lwm2m.setHandler(info, 'updateRegistration', (obj, cb) => {
        out({ event: 'update', ep: obj && obj.name ? obj.name : '' });
        cb();
    });
    out({ event: 'started', port: info.server._sock.address().port });
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', (line) => {
        let cmd;
        try { cmd = JSON.parse(line); } catch (e) { out({ ok: false, error: 'bad command' }); return; }
        run(cmd);
    });
    rl.on('close', () => { lwm2m.stop(info, () => process.exit(0)); });
});
