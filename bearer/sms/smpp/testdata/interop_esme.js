// An ESME written with the npm "smpp" package (node-smpp), for the interop
// test of our simulated SMSC: it binds as a transceiver, submits a binary
// message in two UDH-concatenated segments with a receipt asked for, and
// reports as JSON lines the submit responses, the receipts and the short
// messages it receives (a device's reply), answering each deliver_sm.
'use strict';
const smpp = require('smpp');
const [host, port, src, dst, dataHex] = process.argv.slice(2);
const data = Buffer.from(dataHex, 'hex');
const session = smpp.connect({ url: 'smpp://' + host + ':' + port, auto_enquire_link_period: 5000 });
const out = (o) => console.log(JSON.stringify(o));
session.on('error', (e) => { out({ op: 'error', msg: String(e) }); process.exit(2); });
session.on('deliver_sm', (pdu) => {
  session.send(pdu.response());
  let sm = pdu.short_message;
  let body = Buffer.isBuffer(sm) ? sm : sm.message;
  let udh = (!Buffer.isBuffer(sm) && sm.udh) ? Buffer.concat(sm.udh) : null;
  if (!Buffer.isBuffer(body)) body = Buffer.from(body || '', 'latin1');
  out({ op: 'deliver', esm: pdu.esm_class, src: pdu.source_addr, dst: pdu.destination_addr, dc: pdu.data_coding,
    udh: udh ? udh.toString('hex') : null, data: body.toString('hex'),
    receipted: pdu.receipted_message_id || null, state: pdu.message_state || null });
});
session.bind_transceiver({ system_id: 'node', password: 'pw' }, (pdu) => {
  out({ op: 'bind', status: pdu.command_status });
  if (pdu.command_status !== 0) process.exit(1);
  const half = Math.ceil(data.length / 2);
  [data.slice(0, half), data.slice(half)].forEach((part, i) => {
    session.submit_sm({
      source_addr_ton: 1, source_addr_npi: 1, source_addr: src,
      dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: dst,
      esm_class: 0x40, data_coding: 4, registered_delivery: 1,
      short_message: Buffer.concat([Buffer.from([5, 0, 3, 0x2a, 2, i + 1]), part]),
    }, (resp) => out({ op: 'submit_resp', seg: i + 1, status: resp.command_status, id: resp.message_id }));
  });
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(3), 120000).unref();
